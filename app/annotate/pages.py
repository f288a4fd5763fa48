"""The annotator's page: one pair at a time, keyboard first; the next pair is prefetched as a fragment.

The page brings the annotation pipeline together: the queue chooses the pair (app/queue/service.py),
the page's form posts the judgment to the JSON API (app/judgments/views.py), and the counts and the
guidelines come from the judgments and the console.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.admin import service as admin_service
from app.api.annotator_work import PageWork
from app.api.deps import SettingsDep
from app.comparisons.schemas import ComparisonId
from app.core.config import Settings
from app.core.db import utcnow
from app.core.templates import render
from app.judgments import service as judgment_service
from app.queue import service as queue_service

router = APIRouter()

SKIP_REASONS = (
    "I can't judge this topic",
    "The prompt is broken or unclear",
    "The responses are the same",
)


def _pair_context(*, db: Session, annotator_id: int, settings: Settings, after: int | None) -> dict[str, Any]:
    """The pair to show (see queue_service.next_for) and what the template needs to show it."""
    pair = queue_service.next_for(
        db=db,
        annotator_id=annotator_id,
        after=after,
        lock_ttl=timedelta(seconds=settings.QUEUE_LOCK_TTL_S),
        gold_rate=settings.QUEUE_GOLD_RATE,
    )
    expires_in_s = int((pair.expires_at - utcnow()).total_seconds()) if pair else 0
    return {"pair": pair, "expires_in_s": expires_in_s, "retry_s": settings.QUEUE_EMPTY_RETRY_S}


def _page_context(*, db: Session, annotator_id: int, settings: Settings) -> dict[str, Any]:
    midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    today, total = judgment_service.counts_for(db=db, annotator_id=annotator_id, since=midnight)
    return {
        **_pair_context(db=db, annotator_id=annotator_id, settings=settings, after=None),
        "today": today,
        "total": total,
        "guidelines": admin_service.get_guidelines(db=db),
        "rationale_max": settings.JUDGMENT_RATIONALE_MAX_CHARS,
        "skip_reasons": SKIP_REASONS,
    }


@router.get("/annotate")
async def annotate_page(request: Request, work: PageWork, settings: SettingsDep) -> Response:
    context = await work.run(lambda db, annotator: _page_context(db=db, annotator_id=annotator.id, settings=settings))
    return render(request, "annotate/index.html", context)


@router.get("/annotate/pair")
async def pair_fragment(
    request: Request,
    work: PageWork,
    settings: SettingsDep,
    after: Annotated[ComparisonId | None, Query()] = None,
) -> Response:
    """The page's next pair as an HTML fragment (rendered by the same template as the first one)."""
    context = await work.run(
        lambda db, annotator: _pair_context(db=db, annotator_id=annotator.id, settings=settings, after=after)
    )
    return render(request, "annotate/_pair.html", context)
