"""JSON API for prompts: bulk import (JSON body, or a JSONL/CSV upload), list with filters, deactivate.

Admins only. The imports' bodies are capped at UPLOAD_MAX_BYTES before anything reads them (a 413, see
app.core.limits); an import stores all of its prompts or none of them, unless an upload asks to skip its
bad lines.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, UploadFile

from app.api.deps import ApiAdmin, IdPath, SessionDep, SettingsDep
from app.core.errors import Unprocessable
from app.core.text import Text
from app.prompts import service
from app.prompts.schemas import ImportReport, PromptImport, PromptListQuery, PromptPage, PromptRead

router = APIRouter(prefix="/prompts")


@router.post("", response_model=ImportReport)
def import_prompts(body: PromptImport, db: SessionDep, settings: SettingsDep, _admin: ApiAdmin) -> ImportReport:
    """Import prompts from a JSON body, all or nothing: an invalid item is a 422 naming its index.
    Prompts already stored (or repeated in the body) are counted as duplicates, not stored twice."""
    try:
        return service.import_prompts(db=db, rows=body.prompts, source=body.source, max_chars=settings.PROMPT_MAX_CHARS)
    except Unprocessable as exc:  # the service names the item as ("rows", i): here it is body.prompts[i]
        raise Unprocessable(exc.msg, loc=("body", "prompts", *exc.loc[1:])) from exc


@router.post("/import", response_model=ImportReport)
def upload_prompts(
    file: Annotated[UploadFile, File(description='JSONL ({"prompt"} or {"messages"} per line) or CSV.')],
    db: SessionDep,
    settings: SettingsDep,
    _admin: ApiAdmin,
    skip_bad_lines: Annotated[bool, Query(description="Import the good lines and report the bad ones.")] = False,
    file_format: Annotated[Literal["jsonl", "csv"] | None, Query(description="By default from the name.")] = None,
    source: Annotated[Text | None, Query(max_length=100, description="Defaults to the file name.")] = None,
) -> ImportReport:
    """Import a prompt file. A bad line refuses the whole file (a 422 listing every bad line) unless
    skip_bad_lines; the report lists the lines left out."""
    content = service.decode_upload(file.file.read())
    return service.import_text(
        db=db,
        content=content,
        fmt=file_format or service.detect_format(file.filename, content),
        source=service.upload_source(source, file.filename),
        skip_bad_lines=skip_bad_lines,
        max_chars=settings.PROMPT_MAX_CHARS,
    )


@router.get("", response_model=PromptPage)
def list_prompts(query: Annotated[PromptListQuery, Query()], db: SessionDep, _admin: ApiAdmin) -> PromptPage:
    """Prompts, newest first, with the total matching the filters."""
    items, total = service.list_(
        db=db,
        q=query.q,
        tag=query.tag,
        source=query.source,
        active=query.active,
        offset=query.offset,
        limit=query.limit,
    )
    return PromptPage(items=[PromptRead.model_validate(p) for p in items], total=total)


@router.get("/{prompt_id}", response_model=PromptRead)
def read_prompt(prompt_id: IdPath, db: SessionDep, _admin: ApiAdmin) -> PromptRead:
    """One prompt."""
    return PromptRead.model_validate(service.get_or_raise(db=db, prompt_id=prompt_id))


@router.post("/{prompt_id}/deactivate", response_model=PromptRead)
def deactivate_prompt(prompt_id: IdPath, db: SessionDep, _admin: ApiAdmin) -> PromptRead:
    """Stop sampling a prompt and retire its ready pairs; its judgments are kept."""
    return PromptRead.model_validate(service.deactivate(db=db, prompt_id=prompt_id))


@router.post("/{prompt_id}/reactivate", response_model=PromptRead)
def reactivate_prompt(prompt_id: IdPath, db: SessionDep, _admin: ApiAdmin) -> PromptRead:
    """Sample a deactivated prompt again."""
    return PromptRead.model_validate(service.reactivate(db=db, prompt_id=prompt_id))
