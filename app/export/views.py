"""JSON API for reading preference data out: the raw judgment list and streamed exports. Admins only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from app.api.deps import ApiAdmin, SessionDep, SettingsDep
from app.core.db import utcnow

from . import formats, service
from .schemas import ExportQuery, JudgmentListQuery, JudgmentPage

router = APIRouter()

# The export response's media types in the OpenAPI schema (no schema object: the body is a file).
EXPORT_MEDIA_TYPES: dict[str, dict[str, Any]] = {
    formats.JsonlEncoder.media_type: {},
    formats.ParquetEncoder.media_type: {},
}


@router.get("/judgments", response_model=JudgmentPage)
def list_judgments(
    query: Annotated[JudgmentListQuery, Query()], db: SessionDep, settings: SettingsDep, _admin: ApiAdmin
) -> JudgmentPage:
    """Every stored judgment with its prompt and pair, in id order, cursor-paginated (ties kept)."""
    return service.list_judgments(
        db=db, filters=query, cursor=query.cursor, limit=query.limit, secret=settings.secret_key
    )


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": EXPORT_MEDIA_TYPES, "description": "The export file, streamed."}},
)
def export_preferences(
    query: Annotated[ExportQuery, Query()],
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    _admin: ApiAdmin,
) -> StreamingResponse:
    """Stream preference data for a training library: TRL, HH-RLHF, Arena-style raw log, or KTO."""
    plan = service.plan_export(
        db=db,
        query=query,
        secret=settings.secret_key,
        default_test_fraction=settings.TRAINING_HELDOUT_FRACTION,
        batch_size=settings.EXPORT_BATCH_SIZE,
    )
    return export_file(request, plan)


def export_file(request: Request, plan: service.ExportPlan) -> StreamingResponse:
    """The planned export, streamed as a download (the API's and the console's)."""
    filename = service.filename_for(plan.query, at=utcnow())
    return StreamingResponse(
        service.export_chunks(database=request.app.state.db, plan=plan),
        media_type=formats.media_type(plan.query),
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Prefloop-Max-Judgment-Id": str(plan.max_judgment_id),
        },
    )
