"""Leaderboard of policy versions judged against each other by people."""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.api.deps import ApiAdmin, SessionDep
from app.ratings import service
from app.ratings.schemas import LeaderboardRowRead

router = APIRouter()


@router.get("/leaderboard", response_model=list[LeaderboardRowRead])
def read_leaderboard(
    db: SessionDep,
    _admin: ApiAdmin,
    bootstrap_rounds: int = Query(200, ge=10, le=2000, description="Resamples for the 95% intervals."),
) -> list[LeaderboardRowRead]:
    """Bradley-Terry rating per policy version (ties as half, both-bad as a tie) with bootstrap
    intervals, and each version's head-to-head record against its parent and the base."""
    return service.leaderboard(db=db, bootstrap_rounds=bootstrap_rounds)
