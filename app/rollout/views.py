"""JSON API for human-gated rollouts (admins only): read their state and evidence, stop a running one."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ApiAdmin, IdPath, SessionDep
from app.core.db import utcnow
from app.rollout import service
from app.rollout.schemas import RolloutRead

router = APIRouter()


@router.get("/rollouts", response_model=list[RolloutRead])
def list_rollouts(db: SessionDep, _admin: ApiAdmin) -> list[RolloutRead]:
    """Every rollout, newest first, with its evidence and verdict."""
    return [service.to_read(db=db, rollout=r) for r in service.list_(db=db)]


@router.get("/rollouts/{rollout_id}", response_model=RolloutRead)
def read_rollout(rollout_id: IdPath, db: SessionDep, _admin: ApiAdmin) -> RolloutRead:
    """One rollout: its state, battles, rating difference with its interval, and verdict."""
    return service.to_read(db=db, rollout=service.get_or_raise(db=db, rollout_id=rollout_id))


@router.post("/rollouts/{rollout_id}/stop", response_model=RolloutRead)
def stop_rollout(rollout_id: IdPath, db: SessionDep, admin: ApiAdmin) -> RolloutRead:
    """End a running rollout by hand; its candidate stays a candidate. 409 when it already ended (the
    message says how)."""
    return service.to_read(db=db, rollout=service.stop(db=db, rollout_id=rollout_id, admin=admin, now=utcnow()))
