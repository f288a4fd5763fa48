"""Human-gated rollouts: a candidate policy version judged against its parent by people, until their
Bradley-Terry ratings decide it (app/rollout/rule.py)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Computed, Enum, ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, CreatedAtMixin


class RolloutStatus(enum.StrEnum):
    running = "running"
    activated = "activated"  # the candidate became the active version (people preferred it, or an admin)
    rejected = "rejected"  # people preferred the parent: the candidate stays a candidate, never served
    inconclusive = "inconclusive"  # the cap came first: the candidate stays a candidate
    ended = "ended"  # stopped by an admin, or overtaken (an activation, the candidate gone, a newer rollout)


class Rollout(CreatedAtMixin, Base):
    """One rollout; created_at is when it started. The rule and its cap are copied from the settings at
    the start, so a verdict can always be explained by the numbers stored beside it."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("policy_versions.id"), index=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("policy_versions.id"))
    share: Mapped[float]  # of new annotation pairs
    confidence: Mapped[float]
    max_battles: Mapped[int]
    deadline: Mapped[datetime]
    status: Mapped[RolloutStatus] = mapped_column(
        Enum(RolloutStatus, native_enum=False, length=16), default=RolloutStatus.running
    )
    reason: Mapped[str] = mapped_column(Text, default="")
    # The evidence at the last evaluation: rollout battles (judgments of candidate-vs-parent pairs since the
    # start) from the candidate's side, and the candidate's rating minus the parent's with its interval.
    battles: Mapped[int] = mapped_column(default=0)
    wins: Mapped[int] = mapped_column(default=0)
    losses: Mapped[int] = mapped_column(default=0)
    ties: Mapped[int] = mapped_column(default=0)
    rating_diff: Mapped[float | None]
    rating_diff_low: Mapped[float | None]
    rating_diff_high: Mapped[float | None]
    ended_at: Mapped[datetime | None]
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # TRUE while running, NULL otherwise; being unique, the database itself refuses a second running rollout.
    is_running: Mapped[bool | None] = mapped_column(
        Boolean, Computed("CASE WHEN status = 'running' THEN TRUE END", persisted=True), unique=True
    )
