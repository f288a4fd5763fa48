"""JSON API for training rounds (admins only): launch, list, watch live, cancel, retry.

The console's launch form reads GET /rounds/config for every default and the JSON Schema of the
configuration; its round page polls GET /rounds/{id} (status, stage, step / total_steps, latest
metrics, error, produced versions) and GET /rounds/{id}/metrics?since=<next_since> for the charts.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, status
from fastapi.responses import JSONResponse

from app.api.deps import MAX_DB_ID, ApiAdmin, IdPath, SessionDep, SettingsDep
from app.core.db import utcnow
from app.training import service
from app.training.models import RoundStatus
from app.training.plan import plan_round
from app.training.schemas import (
    ConfigInfo,
    MetricHistory,
    MetricPointRead,
    RoundConfig,
    RoundPage,
    RoundPlanRead,
    RoundRead,
)

router = APIRouter()


OVERRIDES_EXAMPLE = {
    "reward": {"learning_rate": 1e-4},
    "ppo": {"batch_size": 32, "kl_coef": 0.1},
    "gates": {"min_rm_accuracy": 0.65},
    "activate": False,
}


@router.get("/rounds/config", response_model=ConfigInfo)
def read_round_config(db: SessionDep, settings: SettingsDep, _admin: ApiAdmin) -> ConfigInfo:
    """The configuration a round launched now runs with unless overridden (the size-dependent values
    derived from the active policy and the judgments so far, listed in `derived` with their reasons),
    and its JSON Schema (types, limits, help)."""
    plan = plan_round(db=db, settings=settings, overrides={})
    return ConfigInfo(
        defaults=plan.config.model_dump(),
        derived={path: vars(d) for path, d in plan.derived.items()},
        json_schema=RoundConfig.model_json_schema(),
    )


@router.post(
    "/rounds",
    response_model=RoundRead | RoundPlanRead,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": RoundPlanRead, "description": "dry_run: the round's plan; nothing is queued."}},
)
def launch_round(
    db: SessionDep,
    settings: SettingsDep,
    admin: ApiAdmin,
    overrides: Annotated[dict, Body(default_factory=dict, examples=[OVERRIDES_EXAMPLE])],
    dry_run: Annotated[bool, Query(description="Return the round's plan instead of queuing it.")] = False,
) -> RoundRead | JSONResponse:
    """Queue a training round. The body overrides any part of GET /rounds/config's defaults (422 names a
    bad field); 409 while another round is queued or running. With dry_run=true nothing is queued: the
    answer (200) is the plan, the configuration and what the snapshot would hold, with every check it
    would fail and the number needed."""
    if dry_run:
        plan = plan_round(db=db, settings=settings, overrides=overrides)
        return JSONResponse(RoundPlanRead.model_validate(plan.to_json()).model_dump(mode="json"))
    round_ = service.launch(db=db, settings=settings, requested_by=admin, config_overrides=overrides)
    return service.to_read(db=db, round_=round_)


@router.get("/rounds", response_model=RoundPage)
def list_rounds(
    db: SessionDep,
    _admin: ApiAdmin,
    status: RoundStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RoundPage:
    """Rounds, newest first."""
    rounds, total = service.list_(db=db, status=status, limit=limit, offset=offset)
    return RoundPage(items=[service.to_read(db=db, round_=r) for r in rounds], total=total)


@router.get("/rounds/{round_id}", response_model=RoundRead)
def read_round(round_id: IdPath, db: SessionDep, _admin: ApiAdmin) -> RoundRead:
    """One round, with live progress while it runs."""
    return service.to_read(db=db, round_=service.get_or_raise(db=db, round_id=round_id))


@router.get("/rounds/{round_id}/metrics", response_model=MetricHistory)
def read_round_metrics(
    round_id: IdPath,
    db: SessionDep,
    _admin: ApiAdmin,
    since: Annotated[
        int | None, Query(ge=0, le=MAX_DB_ID, description="Only points with a larger id (next_since).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 5000,
) -> MetricHistory:
    """Logged points (reward-model steps, PPO updates) for the live charts."""
    points = service.metric_history(db=db, round_id=round_id, since_id=since, limit=limit)
    return MetricHistory(
        round_id=round_id,
        items=[MetricPointRead.model_validate(p) for p in points],
        next_since=points[-1].id if points else (since or 0),
    )


@router.post("/rounds/{round_id}/cancel", response_model=RoundRead)
def cancel_round(round_id: IdPath, db: SessionDep, _admin: ApiAdmin) -> RoundRead:
    """Cancel a queued round at once, or a running one within seconds (its trainer is killed, its files
    deleted, nothing is published). 409 for a finished round."""
    return service.to_read(db=db, round_=service.request_cancel(db=db, round_id=round_id, now=utcnow()))


@router.post("/rounds/{round_id}/retry", response_model=RoundRead)
def retry_round(round_id: IdPath, db: SessionDep, _admin: ApiAdmin) -> RoundRead:
    """Queue a failed or cancelled round again; a failed one resumes after its last completed stage."""
    return service.to_read(db=db, round_=service.retry(db=db, round_id=round_id))
