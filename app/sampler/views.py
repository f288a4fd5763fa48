"""JSON API for the sampler's state (admins): the pool and the version actually generating."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ApiAdmin, SessionDep
from app.policies import service as policy_service
from app.sampler import service
from app.sampler.schemas import SamplerStatusRead

router = APIRouter()


@router.get("/sampler", response_model=SamplerStatusRead)
def read_sampler(db: SessionDep, _admin: ApiAdmin) -> SamplerStatusRead:
    """Pool size, the active version and the one the sampler serves (they differ when a switch failed)."""
    active = policy_service.get_active(db=db)
    saved = service.load_status(db=db)
    status = saved[0] if saved else {}
    return SamplerStatusRead(
        pool_size=service.pool_size(db=db),
        active_version=active.number if active else None,
        serving_version=status.get("serving_version"),
        baseline_version=status.get("baseline_version"),
        rollout_candidate=status.get("rollout_candidate"),
        last_error=status.get("last_error", ""),
        low_water=status.get("low_water"),
        host=status.get("host"),
        pid=status.get("pid"),
        reported_at=status.get("reported_at"),
    )
