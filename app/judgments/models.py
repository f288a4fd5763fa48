"""Judgments: the annotators' work. Never updated in place, never deleted by the system."""

from __future__ import annotations

import enum

from sqlalchemy import Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.comparisons.models import Choice, Comparison
from app.core.db import Base, CreatedAtMixin


class ScreenChoice(enum.StrEnum):
    """What an annotator picked on screen; stored as a Choice through the showing's left/right order."""

    left = "left"
    right = "right"
    tie = "tie"
    both_bad = "both_bad"


class Strength(enum.IntEnum):
    """How much better the chosen side is (Judgment.strength)."""

    slightly = 1
    clearly = 2
    much = 3


class Judgment(CreatedAtMixin, Base):
    __tablename__ = "judgments"
    __table_args__ = (
        UniqueConstraint("comparison_id", "annotator_id"),
        # A retried submit carries the same request id and must not store a second judgment.
        UniqueConstraint("annotator_id", "client_request_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    choice: Mapped[Choice] = mapped_column(Enum(Choice, native_enum=False, length=16))
    # 1 slightly, 2 clearly, 3 much better; None when the annotator gave none.
    strength: Mapped[int | None]
    rationale: Mapped[str] = mapped_column(Text, default="")
    # Which completion ("a" or "b") was on the left for this annotator: position bias is measurable.
    shown_left: Mapped[str] = mapped_column(String(1))
    # Measured by the server, from the moment the pair was shown (its lock) to the submit.
    time_spent_ms: Mapped[int | None]
    # The client's own measure, when it sends one (the browser page does).
    client_time_spent_ms: Mapped[int | None]
    client_request_id: Mapped[str | None] = mapped_column(String(100))
    # "browser" or "api"
    channel: Mapped[str] = mapped_column(String(16), default="browser")

    comparison: Mapped[Comparison] = relationship()
