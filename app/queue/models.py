"""Who is looking at which pair right now, and which pairs an annotator passed on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.comparisons.models import Comparison
from app.core.db import Base, CreatedAtMixin


class QueueLock(CreatedAtMixin, Base):
    """A comparison handed to one annotator until expires_at; expired locks return to the pool.

    An annotator has two places for locks (slot 0 and 1): the pair on screen and the one prefetched
    behind it (app/queue/service.py). One lock per place is a constraint, so simultaneous requests of
    one annotator cannot reserve more pairs than that, however their transactions interleave.
    """

    __tablename__ = "queue_locks"
    __table_args__ = (
        UniqueConstraint("comparison_id", "annotator_id"),
        # Also the index the queue reads an annotator's locks through.
        UniqueConstraint("annotator_id", "slot"),
        CheckConstraint("slot IN (0, 1)", name="slot"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # Which of the annotator's two places the lock holds: 0 when they held no pair, else the other
    # place than the pair on screen's. Places carry no meaning beyond telling the two apart.
    slot: Mapped[int] = mapped_column(SmallInteger)
    # Which completion ("a" or "b") this showing puts on the left; randomized per showing.
    left: Mapped[str] = mapped_column(String(1))
    expires_at: Mapped[datetime] = mapped_column(index=True)
    # When the pair went on screen. A prefetched pair is locked before it is shown; its clock (time
    # spent, and the lock's TTL) starts here, not at created_at. None while it waits, prefetched.
    shown_at: Mapped[datetime | None]


class Skip(CreatedAtMixin, Base):
    __tablename__ = "skips"
    __table_args__ = (UniqueConstraint("comparison_id", "annotator_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    reason: Mapped[str] = mapped_column(String(500), default="")


# The order the queue scans the pool in (app/queue/service.py): ready pairs, gold apart, fresh
# (judgment_count 0) apart from the ones already in progress, oldest first. With this index every
# tier is an index range read in id order that stops at the first pair the annotator may take.
Index(
    "ix_comparisons_queue_order",
    Comparison.status,
    Comparison.is_gold,
    Comparison.judgment_count,
    Comparison.id,
)
