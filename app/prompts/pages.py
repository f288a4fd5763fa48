"""The console's prompts page (/admin/prompts): search and filter, import a JSONL or CSV file, deactivate
and reactivate."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.api.deps import CsrfChecked, IdPath, SessionDep, SettingsDep
from app.comparisons import service as comparisons_service
from app.core.config import Settings
from app.core.errors import TooLarge, Unprocessable
from app.core.pages import confirm_page, console_page, local_target, redirect_with_flash, rerender_if_refused
from app.core.text import Text
from app.judgments import service as judgment_service
from app.prompts import service

router = APIRouter()

ACTIVE_FILTERS = {"all": None, "active": True, "inactive": False}


def _prompts_context(
    db: Session, settings: Settings, *, q: str = "", status: str = "all", page: int = 1, **extra: Any
) -> dict[str, Any]:
    size = settings.ADMIN_PAGE_SIZE
    items, total = service.list_(
        db=db, q=q.strip() or None, active=ACTIVE_FILTERS.get(status), offset=(page - 1) * size, limit=size
    )
    return {
        "prompts": items,
        "judgment_counts": judgment_service.count_by_prompt(db=db, prompt_ids=[p.id for p in items]),
        "total": total,
        "q": q,
        "status": status,
        "page": page,
        "here": "/admin/prompts?" + urlencode({"q": q, "status": status, "page": page}),
        "pages": max(1, math.ceil(total / size)),
        "active_count": service.count_active(db=db),
        "max_mb": settings.UPLOAD_MAX_BYTES / 2**20,
        **extra,
    }


@router.get("/prompts")
def prompts(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    q: Annotated[Text, Query(max_length=500)] = "",
    status: Annotated[Literal["all", "active", "inactive"], Query()] = "all",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    return console_page(request, "prompts", _prompts_context(db, settings, q=q, status=status, page=page))


@router.post("/prompts/import", dependencies=[CsrfChecked])
def import_prompts(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile | None, File()] = None,
    source: Annotated[Text, Form(max_length=100)] = "",
    skip_bad_lines: Annotated[bool, Form()] = False,
) -> Response:
    with rerender_if_refused("prompts", lambda page_db: _prompts_context(page_db, settings, source=source)):
        if file is None or not file.filename:
            raise Unprocessable("Choose a JSONL or CSV file to import.", loc=("file",))
        # The same limit as the prompts API (UPLOAD_MAX_BYTES).
        data = file.file.read(settings.UPLOAD_MAX_BYTES + 1)
        if len(data) > settings.UPLOAD_MAX_BYTES:
            limit_mb = settings.UPLOAD_MAX_BYTES / 2**20
            raise TooLarge(f"The file is larger than {limit_mb:g} MB; split it.", loc=("file",))
        content = service.decode_upload(data)
        report = service.import_text(
            db=db,
            content=content,
            fmt=service.detect_format(file.filename, content),
            source=service.upload_source(source, file.filename),
            skip_bad_lines=skip_bad_lines,
            max_chars=settings.PROMPT_MAX_CHARS,
        )
    skipped = "; ".join(f"line {e.line}: {e.message}" for e in report.errors[:5])
    message = f"Imported {report.created} prompts ({report.duplicates} duplicates"
    message += f", {len(report.errors)} bad lines skipped: {skipped})." if report.errors else ")."
    return redirect_with_flash(request, "/admin/prompts", message)


def deactivation_message(db: Session, prompt_id: int) -> str:
    """What deactivating the prompt will do, for the admin to confirm."""
    service.get_or_raise(db=db, prompt_id=prompt_id)
    ready = comparisons_service.count_ready_for_prompt(db=db, prompt_id=prompt_id)
    return (
        f"Deactivate prompt {prompt_id}? The sampler stops using it and its {ready} ready "
        f"pair{'' if ready == 1 else 's'} retire{'s' if ready == 1 else ''} from the queue. Its judgments stay, "
        "and it can be reactivated."
    )


@router.post("/prompts/{prompt_id}/active", dependencies=[CsrfChecked])
def set_prompt_active(
    request: Request,
    prompt_id: IdPath,
    db: SessionDep,
    active: Annotated[bool, Form()],
    next: Annotated[Text, Form(max_length=2000)] = "/admin/prompts",
    confirmed: Annotated[bool, Form()] = False,
) -> Response:
    back = local_target(next, "/admin/prompts", within="/admin")
    if active:
        service.reactivate(db=db, prompt_id=prompt_id)
    elif not confirmed:
        return confirm_page(
            request,
            message=deactivation_message(db, prompt_id),
            action=f"/admin/prompts/{prompt_id}/active",
            confirm_label=f"Deactivate prompt {prompt_id}",
            back=back,
            section="prompts",
            fields={"active": "false", "next": back},
        )
    else:
        service.deactivate(db=db, prompt_id=prompt_id)
    state = "active again" if active else "deactivated; its ready pairs are retired"
    return redirect_with_flash(request, back, f"Prompt {prompt_id} is {state}.")
