"""The console's export page (/admin/export): choose a format and filters, see how many judgments (and,
where the counts alone say it, rows) the file will hold, and download it. The file is the API's export
(GET /api/v1/export), streamed by the same code."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.api.deps import SessionDep, SettingsDep
from app.auth import service as auth_service
from app.comparisons.models import Choice
from app.core.config import Settings
from app.core.errors import DomainError
from app.core.pages import console_page, read_fields, validation_message
from app.policies import service as policies_service

from . import service
from .schemas import Aggregate, ConsoleExportQuery, ExportFormat, ExportStyle, FileFormat, SplitName
from .views import export_file

router = APIRouter()

LABELS = {
    **ConsoleExportQuery.LABELS,
    "format": "Format",
    "style": "Style",
    "aggregate": "Several judgments per pair",
    "split": "Split",
    "file_format": "File",
}


def _form_context(db: Session, query: ConsoleExportQuery) -> dict[str, Any]:
    return {
        "query": query,
        "annotators": [u.username for u in auth_service.list_(db=db)],
        "versions": [v.number for v in policies_service.list_versions(db=db)],
        "choices": list(Choice),
        "formats": list(ExportFormat),
        "styles": list(ExportStyle),
        "aggregates": list(Aggregate),
        "splits": list(SplitName),
        "file_formats": list(FileFormat),
        "counts": None,
        "rows": None,
    }


def _plan(db: Session, settings: Settings, query: ConsoleExportQuery) -> service.ExportPlan:
    secret = settings.secret_key
    annotator_id = service.pseudonym_of(db=db, secret=secret, username=query.annotator) if query.annotator else None
    return service.plan_export(
        db=db,
        query=query.export_query(annotator_id=annotator_id),
        secret=secret,
        default_test_fraction=settings.TRAINING_HELDOUT_FRACTION,
        batch_size=settings.EXPORT_BATCH_SIZE,
    )


def _export(request: Request, db: Session, settings: Settings, *, download: bool) -> Response:
    """The page (download=False: the form and what the file will hold) or the file; bad values show the
    form again as it was filled in, with the message and a 422, before any byte of a file is sent."""
    query, typed, invalid = read_fields(ConsoleExportQuery, request.query_params)
    context = _form_context(db, query) | {"typed": typed}
    if invalid is not None:
        return console_page(request, "export", context, status_code=422, error=validation_message(invalid, LABELS))
    try:
        plan = _plan(db, settings, query)
    except DomainError as exc:
        return console_page(request, "export", context, status_code=exc.status_code, error=exc.msg)
    if download:
        return export_file(request, plan)
    counts = service.choice_counts(db=db, filters=plan.filters)
    context.update(counts=counts, rows=service.expected_rows(plan.query, counts))
    return console_page(request, "export", context)


@router.get("/export")
def export_page(request: Request, db: SessionDep, settings: SettingsDep) -> Response:
    return _export(request, db, settings, download=False)


@router.get("/export/file")
def export_download(request: Request, db: SessionDep, settings: SettingsDep) -> Response:
    return _export(request, db, settings, download=True)
