"""Completions sampled from a policy version, and the pairs of them shown to annotators."""

from __future__ import annotations

import enum

from sqlalchemy import Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import Base, CreatedAtMixin
from app.policies.models import PolicyVersion
from app.prompts.models import Prompt


class Choice(enum.StrEnum):
    """What an annotator said of a pair, always in terms of completion a / b, never of screen side."""

    a = "a"
    b = "b"
    tie = "tie"
    both_bad = "both_bad"


class ComparisonStatus(enum.StrEnum):
    ready = "ready"
    completed = "completed"
    retired = "retired"


class Completion(CreatedAtMixin, Base):
    __tablename__ = "completions"

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    policy_version_id: Mapped[int] = mapped_column(ForeignKey("policy_versions.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int]
    # "eos" when the model ended the answer itself, "length" when max_new_tokens cut it off.
    finish_reason: Mapped[str] = mapped_column(String(16))
    sampling: Mapped[dict] = mapped_column(default=dict)

    policy_version: Mapped[PolicyVersion] = relationship()


class Comparison(CreatedAtMixin, Base):
    __tablename__ = "comparisons"
    __table_args__ = (Index("ix_comparisons_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    completion_a_id: Mapped[int] = mapped_column(ForeignKey("completions.id"))
    completion_b_id: Mapped[int] = mapped_column(ForeignKey("completions.id"))
    status: Mapped[ComparisonStatus] = mapped_column(
        Enum(ComparisonStatus, native_enum=False, length=16), default=ComparisonStatus.ready
    )
    # How many annotators should judge this pair (more than one measures agreement).
    overlap_target: Mapped[int] = mapped_column(default=1)
    judgment_count: Mapped[int] = mapped_column(default=0)
    is_gold: Mapped[bool] = mapped_column(default=False)
    gold_choice: Mapped[Choice | None] = mapped_column(Enum(Choice, native_enum=False, length=16))

    prompt: Mapped[Prompt] = relationship()
    completion_a: Mapped[Completion] = relationship(foreign_keys=[completion_a_id])
    completion_b: Mapped[Completion] = relationship(foreign_keys=[completion_b_id])
