"""JSON API of the annotation queue: the next pair, skipping and releasing pairs."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.api.annotator_work import ApiWork
from app.api.deps import IdPath, SettingsDep
from app.comparisons.schemas import ComparisonId
from app.queue import service
from app.queue.schemas import PairRead, SkipCreate, SkipRead

router = APIRouter(prefix="/queue", tags=["queue"])


@router.get(
    "/next",
    response_model=PairRead,
    responses={
        204: {
            "description": "No pair is open for you now (the sampler is generating more): "
            "no body; ask again after the Retry-After header's seconds."
        }
    },
)
async def read_next_pair(
    work: ApiWork,
    settings: SettingsDep,
    after: Annotated[
        ComparisonId | None,
        Query(description="Prefetch: the pair to show after this one (on screen now) instead of the current one."),
    ] = None,
) -> Response | PairRead:
    """The pair to judge now, reserved for you (the same one until you judge, skip or release it).

    Left/right order is random per showing; submit your choice as left/right/tie/both_bad.
    """
    pair = await work.run(
        lambda db, annotator: service.next_for(
            db=db,
            annotator_id=annotator.id,
            after=after,
            gold_rate=settings.QUEUE_GOLD_RATE,
            lock_ttl=timedelta(seconds=settings.QUEUE_LOCK_TTL_S),
        )
    )
    if pair is None:
        return Response(
            status_code=status.HTTP_204_NO_CONTENT, headers={"Retry-After": str(settings.QUEUE_EMPTY_RETRY_S)}
        )
    return PairRead.from_pair(pair)


@router.post(
    "/{comparison_id}/skip",
    response_model=SkipRead,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "You had already skipped this pair; the first skip stands."}},
)
async def skip_pair(comparison_id: IdPath, body: SkipCreate, response: Response, work: ApiWork) -> SkipRead:
    """Pass on a pair reserved for you, with a reason; it will not be offered to you again."""
    skip, created = await work.run(
        lambda db, annotator: service.skip(
            db=db, annotator_id=annotator.id, comparison_id=comparison_id, reason=body.reason
        )
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return SkipRead.model_validate(skip)


@router.post("/{comparison_id}/release", status_code=status.HTTP_204_NO_CONTENT)
async def release_pair(comparison_id: IdPath, work: ApiWork) -> Response:
    """Hand a pair reserved for you back to the pool without judging it (harmless if you hold none)."""
    await work.run(lambda db, annotator: service.release(db=db, annotator_id=annotator.id, comparison_id=comparison_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
