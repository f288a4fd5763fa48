"""Training rounds: a row per round, its live progress, and its metric history."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Computed, Enum, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, CreatedAtMixin


class RoundStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    # Finished, but a gate (held-out accuracy, KL, eos rate, NaN) refused to publish it.
    rejected = "rejected"


class TrainingRound(CreatedAtMixin, Base):
    __tablename__ = "training_rounds"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[RoundStatus] = mapped_column(
        Enum(RoundStatus, native_enum=False, length=16), default=RoundStatus.queued, index=True
    )
    # snapshot | reward_model | ppo | evaluate | publish (a resume starts after the last completed one)
    stage: Mapped[str] = mapped_column(String(32), default="")
    completed_stages: Mapped[list] = mapped_column(default=list)
    step: Mapped[int] = mapped_column(default=0)
    total_steps: Mapped[int] = mapped_column(default=0)
    config: Mapped[dict] = mapped_column(default=dict)
    # Highest judgment id included: the round's data can always be reproduced.
    snapshot_max_judgment_id: Mapped[int | None]
    executor: Mapped[str] = mapped_column(String(32), default="local")
    handle: Mapped[str] = mapped_column(String(200), default="")
    worker_id: Mapped[str] = mapped_column(String(200), default="")
    heartbeat_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    reward_model_id: Mapped[int | None] = mapped_column(ForeignKey("reward_models.id"))
    policy_version_id: Mapped[int | None] = mapped_column(ForeignKey("policy_versions.id"))
    base_policy_version_id: Mapped[int | None] = mapped_column(ForeignKey("policy_versions.id"))
    latest_metrics: Mapped[dict] = mapped_column(default=dict)
    # Final metrics per completed stage, the gate verdicts and the held-out evaluation (status.json).
    results: Mapped[dict] = mapped_column(default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    log_tail: Mapped[str] = mapped_column(Text, default="")
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # TRUE while queued or running, NULL otherwise; being unique, the database itself refuses a second
    # round in flight, whichever path (API, CLI, schedule, retry) tries to queue it.
    in_flight: Mapped[bool | None] = mapped_column(
        Boolean,
        Computed("CASE WHEN status IN ('queued', 'running') THEN TRUE END", persisted=True),
        unique=True,
    )


class RoundMetric(CreatedAtMixin, Base):
    """One logged point (a reward-model step or a PPO update) for the round's live charts."""

    __tablename__ = "round_metrics"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("training_rounds.id"), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    step: Mapped[int]
    values: Mapped[dict]
