"""Leaderboard of policy versions judged against each other by people."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ApiAdmin, SessionDep
from app.ratings import service
from app.ratings.schemas import LeaderboardRowRead

router = APIRouter()


@router.get("/leaderboard", response_model=list[LeaderboardRowRead])
def read_leaderboard(db: SessionDep, _admin: ApiAdmin) -> list[LeaderboardRowRead]:
    """Bradley-Terry rating per policy version (ties as half, both-bad as a tie; a Gaussian prior around
    the base) with 95% intervals, whether it has battled enough to be ranked, and each version's
    head-to-head record against its parent and the base."""
    return service.leaderboard(db=db)
