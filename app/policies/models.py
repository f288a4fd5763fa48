"""Versions of the policy and of the reward model, each a directory in the registry."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base, CreatedAtMixin


class PolicyStatus(enum.StrEnum):
    active = "active"
    candidate = "candidate"
    archived = "archived"


class PolicyVersion(CreatedAtMixin, Base):
    __tablename__ = "policy_versions"
    __table_args__ = (
        # The database itself guarantees that at most one version is active.
        Index(
            "uq_policy_versions_one_active",
            "status",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("policy_versions.id"))
    # Directory under the registry holding the HF-format model and manifest.json.
    path: Mapped[str] = mapped_column(String(500))
    # Where the weights came from: a Hub id or local path for registered bases, else the round.
    source: Mapped[str] = mapped_column(String(500), default="")
    # The round that produced a version is training_rounds.policy_version_id pointing here.
    status: Mapped[PolicyStatus] = mapped_column(Enum(PolicyStatus, native_enum=False, length=16))
    metrics: Mapped[dict] = mapped_column(default=dict)
    activated_at: Mapped[datetime | None]

    parent: Mapped[PolicyVersion | None] = relationship(remote_side=[id])


class RewardModel(CreatedAtMixin, Base):
    __tablename__ = "reward_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(unique=True)
    path: Mapped[str] = mapped_column(String(500))
    metrics: Mapped[dict] = mapped_column(default=dict)
    # Mean/std of scores on policy samples: PPO normalizes rewards with them.
    score_mean: Mapped[float] = mapped_column(default=0.0)
    score_std: Mapped[float] = mapped_column(default=1.0)
