"""The migration that gives each queue lock one of its annotator's two places fits the locks it finds:
expired ones go, and of an annotator's unexpired locks the two oldest stay; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from app.core.db import utcnow
from app.core.migrations import alembic_config, upgrade_to_head
from app.queue.models import QueueLock
from tests.factories import make_annotators, make_comparisons
from tests.queue.test_concurrency import TTL, take

REVISION = "0005"

_OLD_LOCKS = sa.table(
    "queue_locks",
    sa.column("comparison_id", sa.Integer()),
    sa.column("annotator_id", sa.Integer()),
    sa.column("left", sa.String()),
    sa.column("expires_at", sa.DateTime(timezone=True)),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def test_existing_locks_are_fitted_into_two_places_per_annotator(db):
    pairs = make_comparisons(db, 5)
    raced, mixed, lapsed = make_annotators(db, 3)
    config = alembic_config(db.url)
    before = ScriptDirectory.from_config(config).get_revision(REVISION).down_revision
    now = utcnow()
    live, expired = now + TTL, now - timedelta(seconds=1)
    command.downgrade(config, before)
    try:
        with db.engine.begin() as connection:
            connection.execute(
                sa.insert(_OLD_LOCKS),
                [
                    # Three unexpired locks, as the race let one annotator take.
                    *(
                        {"comparison_id": p, "annotator_id": raced, "left": "a", "expires_at": live, "created_at": now}
                        for p in pairs[:3]
                    ),
                    {
                        "comparison_id": pairs[3],
                        "annotator_id": mixed,
                        "left": "b",
                        "expires_at": expired,
                        "created_at": now,
                    },
                    {
                        "comparison_id": pairs[4],
                        "annotator_id": mixed,
                        "left": "a",
                        "expires_at": live,
                        "created_at": now,
                    },
                    {
                        "comparison_id": pairs[0],
                        "annotator_id": lapsed,
                        "left": "a",
                        "expires_at": expired,
                        "created_at": now,
                    },
                ],
            )
    finally:
        upgrade_to_head(db.url)
    with db.session() as session:
        kept = session.execute(
            sa.select(QueueLock.annotator_id, QueueLock.comparison_id, QueueLock.slot).order_by(QueueLock.id)
        ).all()
    assert [tuple(row) for row in kept] == [(raced, pairs[0], 0), (raced, pairs[1], 1), (mixed, pairs[4], 0)]
    # The queue carries on from there: a reload shows the oldest pair, prefetching finds the other.
    assert take(db, raced) == pairs[0]
    assert take(db, raced, after=pairs[0]) == pairs[1]
