"""Shapes of people's ratings of policy versions: head-to-head records and leaderboard rows."""

from __future__ import annotations

from pydantic import BaseModel


class RecordRead(BaseModel):
    """A version's head-to-head record against one opponent."""

    wins: int
    losses: int
    ties: int
    win_rate: float | None
    interval: tuple[float, float] | None


class LeaderboardRowRead(BaseModel):
    """A version's Bradley-Terry rating with its 95% interval; enough_battles is False below the minimum
    number of battles, where the rating is mostly the prior and the version is not ranked."""

    version_id: int
    number: int
    status: str
    rating: float
    rating_low: float
    rating_high: float
    battles: int
    enough_battles: bool
    vs_parent: RecordRead | None
    vs_base: RecordRead | None


class ParentRecord(BaseModel):
    """How people judged a version against the one it was trained from (numbered parent_number)."""

    parent_number: int
    record: RecordRead
