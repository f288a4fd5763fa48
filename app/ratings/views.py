"""Leaderboard of policy versions judged against each other by people."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.api.deps import ApiAdmin, SessionDep
from app.ratings import service

router = APIRouter()


class RecordRead(BaseModel):
    wins: int
    losses: int
    ties: int
    win_rate: float | None
    interval: tuple[float, float] | None


class LeaderboardRowRead(BaseModel):
    version_id: int
    number: int
    status: str
    rating: float
    rating_low: float
    rating_high: float
    battles: int
    vs_parent: RecordRead | None
    vs_base: RecordRead | None


@router.get("/leaderboard", response_model=list[LeaderboardRowRead])
def read_leaderboard(
    db: SessionDep,
    _admin: ApiAdmin,
    bootstrap_rounds: int = Query(200, ge=10, le=2000, description="Resamples for the 95% intervals."),
) -> list[LeaderboardRowRead]:
    """Bradley-Terry rating per policy version (ties as half, both-bad as a tie) with bootstrap
    intervals, and each version's head-to-head record against its parent and the base."""
    return [
        LeaderboardRowRead.model_validate(asdict(row))
        for row in service.leaderboard(db=db, bootstrap_rounds=bootstrap_rounds)
    ]
