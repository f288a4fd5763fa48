"""JSON API for submitting judgments (the browser page and token clients alike)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.api.annotator_work import ApiWork
from app.api.deps import SettingsDep
from app.judgments import service
from app.judgments.models import Strength
from app.judgments.schemas import JudgmentCreate, JudgmentRead

router = APIRouter(prefix="/judgments", tags=["judgments"])


@router.post(
    "",
    response_model=JudgmentRead,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "A retry (same client_request_id): the judgment stored the first time."}},
)
async def create_judgment(
    body: JudgmentCreate, request: Request, response: Response, work: ApiWork, settings: SettingsDep
) -> JudgmentRead:
    """Judge a pair reserved for you (from GET /api/v1/queue/next)."""
    # Authenticated either by a bearer token or by the browser's session (see ApiUser).
    channel = "api" if request.headers.get("authorization") else "browser"
    judgment, created = await work.run(
        lambda db, annotator: service.submit(
            db=db,
            annotator_id=annotator.id,
            comparison_id=body.comparison_id,
            side=body.choice,
            strength=Strength[body.strength] if body.strength else None,
            rationale=body.rationale,
            client_request_id=body.client_request_id,
            client_time_spent_ms=body.time_spent_ms,
            channel=channel,
            rationale_max_chars=settings.JUDGMENT_RATIONALE_MAX_CHARS,
        )
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return JudgmentRead.from_judgment(judgment)
