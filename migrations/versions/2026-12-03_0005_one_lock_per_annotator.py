"""one lock per annotator and place

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00.000000

An annotator holds at most two queue locks, the pair on screen and the one prefetched behind it.
Each lock now names its place (slot 0 or 1), unique per annotator, so simultaneous requests of one
annotator cannot reserve more. Existing rows are fitted first: expired locks go (the queue drops them
on the annotator's next request anyway), and of an annotator's unexpired locks the two oldest stay,
the ones the queue would show first; any more came from the race this closes.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LOCKS = sa.table(
    "queue_locks",
    sa.column("id", sa.Integer()),
    sa.column("annotator_id", sa.Integer()),
    sa.column("expires_at", sa.DateTime(timezone=True)),
    sa.column("slot", sa.SmallInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("queue_locks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slot", sa.SmallInteger(), nullable=True))

    connection = op.get_bind()
    connection.execute(sa.delete(_LOCKS).where(_LOCKS.c.expires_at <= datetime.now(UTC)))
    rows = connection.execute(
        sa.select(_LOCKS.c.id, _LOCKS.c.annotator_id).order_by(_LOCKS.c.annotator_id, _LOCKS.c.id)
    ).all()
    slots: dict[int, list[int]] = {}
    for lock_id, annotator_id in rows:
        slots.setdefault(annotator_id, []).append(lock_id)
    extra = [lock_id for ids in slots.values() for lock_id in ids[2:]]
    second = [ids[1] for ids in slots.values() if len(ids) > 1]
    if extra:
        connection.execute(sa.delete(_LOCKS).where(_LOCKS.c.id.in_(extra)))
    if second:
        connection.execute(sa.update(_LOCKS).where(_LOCKS.c.id.in_(second)).values(slot=1))
    connection.execute(sa.update(_LOCKS).where(_LOCKS.c.slot.is_(None)).values(slot=0))

    with op.batch_alter_table("queue_locks", schema=None) as batch_op:
        batch_op.alter_column("slot", existing_type=sa.SmallInteger(), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_queue_locks_annotator_id_slot"), ["annotator_id", "slot"])
        batch_op.create_check_constraint(batch_op.f("ck_queue_locks_slot"), sa.text("slot IN (0, 1)"))
        # The unique constraint's index leads with annotator_id and serves the same reads.
        batch_op.drop_index(batch_op.f("ix_queue_locks_annotator_id"))


def downgrade() -> None:
    with op.batch_alter_table("queue_locks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_queue_locks_annotator_id"), ["annotator_id"], unique=False)
        batch_op.drop_constraint(batch_op.f("ck_queue_locks_slot"), type_="check")
        batch_op.drop_constraint(batch_op.f("uq_queue_locks_annotator_id_slot"), type_="unique")
        batch_op.drop_column("slot")
