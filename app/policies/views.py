"""JSON API for policy versions (lineage, metrics, activation) and reward models. Admins only."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ApiAdmin, IdPath, SessionDep
from app.core.db import utcnow
from app.policies import service
from app.policies.models import PolicyVersion
from app.policies.schemas import PolicyVersionRead, RewardModelRead
from app.rollout import service as rollout_service
from app.training import service as training_service

router = APIRouter()


def _read(version: PolicyVersion, round_ids: dict[int, int]) -> PolicyVersionRead:
    return PolicyVersionRead.model_validate(version).model_copy(
        update={
            "parent_number": version.parent.number if version.parent else None,
            "round_id": round_ids.get(version.id),
        }
    )


@router.get("/policies", response_model=list[PolicyVersionRead])
def list_policies(db: SessionDep, _admin: ApiAdmin) -> list[PolicyVersionRead]:
    """Every policy version, newest first, with its parent, producing round and metrics."""
    versions = service.list_versions(db=db)
    round_ids = training_service.producing_rounds(db=db, version_ids=[v.id for v in versions])
    return [_read(v, round_ids) for v in versions]


@router.get("/policies/{number}", response_model=PolicyVersionRead)
def read_policy(number: IdPath, db: SessionDep, _admin: ApiAdmin) -> PolicyVersionRead:
    """One policy version by its number."""
    version = service.get_by_number_or_raise(db=db, number=number)
    return _read(version, training_service.producing_rounds(db=db, version_ids=[version.id]))


@router.post("/policies/{number}/activate", response_model=PolicyVersionRead)
def activate_policy(number: IdPath, db: SessionDep, admin: ApiAdmin) -> PolicyVersionRead:
    """Make this version the one the sampler uses (an earlier one: a rollback). The previously active
    version is archived. The sampler switches without a restart. A running rollout ends, decided by admin."""
    version = service.get_by_number_or_raise(db=db, number=number)
    version = rollout_service.activate(db=db, version_id=version.id, admin=admin, now=utcnow())
    return _read(version, training_service.producing_rounds(db=db, version_ids=[version.id]))


@router.get("/reward-models", response_model=list[RewardModelRead])
def list_reward_models(db: SessionDep, _admin: ApiAdmin) -> list[RewardModelRead]:
    """Every reward model, newest first, with its metrics and score normalization."""
    return [RewardModelRead.model_validate(m) for m in service.list_reward_models(db=db)]


@router.get("/reward-models/{number}", response_model=RewardModelRead)
def read_reward_model(number: IdPath, db: SessionDep, _admin: ApiAdmin) -> RewardModelRead:
    """One reward model by its number."""
    return RewardModelRead.model_validate(service.get_reward_model_by_number_or_raise(db=db, number=number))
