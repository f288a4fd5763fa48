"""The console's judgments browser (/admin/judgments): every judgment, newest first, filtered by annotator,
prompt, policy version, choice and date, each linking to its comparison. The filters live in the query
string, so a filtered list is a link to share; a bad value is a message on the page, not an error page, and
the form keeps what was typed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.deps import SessionDep, SettingsDep
from app.auth import service as auth_service
from app.comparisons.models import Choice
from app.core.errors import DomainError
from app.core.pages import console_page, read_fields, validation_message
from app.export import service as export_service
from app.export.schemas import ConsoleFilters
from app.policies import service as policies_service

router = APIRouter()


@router.get("/judgments")
def judgments(request: Request, db: SessionDep, settings: SettingsDep) -> Response:
    context: dict[str, Any] = {
        "annotators": [u.username for u in auth_service.list_(db=db)],
        "versions": [v.number for v in policies_service.list_versions(db=db)],
        "choices": list(Choice),
        "items": [],
        "counts": None,
        "next_link": None,
    }
    query, typed, invalid = read_fields(ConsoleFilters, request.query_params)
    context.update(query=query, typed=typed)
    if invalid is not None:
        error = validation_message(invalid, ConsoleFilters.LABELS)
        return console_page(request, "judgments", context, status_code=422, error=error)
    secret = settings.secret_key
    try:
        annotator_id = (
            export_service.pseudonym_of(db=db, secret=secret, username=query.annotator) if query.annotator else None
        )
        filters = query.filters(annotator_id=annotator_id)
        page = export_service.list_judgments(
            db=db,
            filters=filters,
            cursor=query.cursor,
            limit=settings.ADMIN_PAGE_SIZE,
            secret=secret,
            newest_first=True,
        )
        counts = export_service.count_matching(db=db, filters=filters, secret=secret)
    except DomainError as exc:
        return console_page(request, "judgments", context, status_code=exc.status_code, error=exc.msg)
    names = export_service.annotator_names(db=db, secret=secret)
    context.update(
        items=[(item, names.get(item.annotator, item.annotator)) for item in page.items],
        counts=counts,
        next_link=f"?{query.link(cursor=page.next_cursor)}" if page.next_cursor else None,
    )
    return console_page(request, "judgments", context)
