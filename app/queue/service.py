"""The annotation queue: where the next pair for an annotator is chosen, locked and released.

`next_for` picks, for annotator U, in this order:
  1. U's own unexpired lock, oldest first: a reload shows the same pair.
  2. With probability `gold_rate`, a gold pair (known answer) U has not seen yet.
  3. Pairs already in progress: judged by someone, still short of their overlap target.
  4. Fresh pairs, oldest first.
Never a pair U judged, skipped or already holds; never a pair that is not `ready` or whose prompt is
inactive; and never to more annotators at once than the pair still needs: a pair is open while
judgment_count + unexpired locks < overlap_target. Expired locks simply stop counting, so their
pairs return to the pool. The chosen pair is locked for U with a TTL and a random left/right order.

Concurrency, per backend:
- SQLite: the caller's transaction began with BEGIN IMMEDIATE (app/api/annotator_work.py), so pickers run
  one at a time and the capacity test inside the pick query is exact.
- PostgreSQL: the pick takes the comparison's row lock with FOR UPDATE SKIP LOCKED, so concurrent
  pickers step over each other's rows instead of queueing behind them (and wait for them only when
  nothing else is open). A statement's snapshot can predate a lock another picker committed a moment
  earlier, so once the row lock is held the open places are counted again in a fresh statement
  (READ COMMITTED sees everything committed by then). Everything that adds locks or judgments to a
  comparison holds that row lock first, which makes the second count exact.
- One annotator's simultaneous requests: on PostgreSQL each would pick a different pair (they step
  over each other's rows), so an annotator's locks sit in two places, unique per annotator
  (QueueLock.slot), whatever the backend. All but the first request to insert into a place find it
  taken and answer with the first one's pair: one reservation per place, by constraint.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Row, Select, bindparam, delete, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from app.comparisons import service as comparisons_service
from app.comparisons.models import Comparison, ComparisonStatus, Completion
from app.core.db import rowcount, table_of, utcnow
from app.core.errors import Conflict, InvalidState
from app.prompts.models import Prompt
from app.queue.models import QueueLock, Skip

# On PostgreSQL a picked row can lose its last open place to a picker whose lock committed after
# this statement's snapshot; the pick then moves on. More than a few such races in a row means the
# pool is all but exhausted, and "nothing for you right now" is the right answer.
_PICK_ATTEMPTS = 8


@dataclass(frozen=True)
class Pair:
    """One showing of a comparison to one annotator: texts by screen side, and until when it is held."""

    comparison_id: int
    messages: list[dict[str, Any]]
    left_text: str
    right_text: str
    # Which completion ("a" or "b") is on the left. Stays on the server: clients judge blind.
    left: str
    expires_at: datetime


def next_for(
    *, db: Session, annotator_id: int, lock_ttl: timedelta, gold_rate: float, after: int | None = None
) -> Pair | None:
    """The pair annotator_id should see now, or None when nothing is open for them.

    With `after` (the id of the pair on screen) the answer is the pair to show after it: the page
    prefetches it while the annotator works. `after` is then marked as shown, which starts its clock
    (time spent, and a fresh TTL) if it was itself a prefetched pair. An annotator holds at most two
    locks this way, the pair on screen and the one behind it, both with the normal TTL; the page
    hands the second back when it is closed (release()), and otherwise it expires like any lock.
    A new lock is taken only when the annotator holds none, or only `after`; it goes in the free
    place (QueueLock.slot), which the database lets one request take.
    """
    now = utcnow()
    live, stale = _own_locks(db=db, annotator_id=annotator_id, now=now)
    waiting = [lock for lock in live if lock.comparison_id != after]
    comparison_id = None
    if not waiting:
        comparison_id = _pick(
            db=db, annotator_id=annotator_id, now=now, gold_rate=gold_rate, held=[lock.comparison_id for lock in live]
        )
    # Writes come only after the pick: on PostgreSQL the pick may wait for a row lock, and a
    # transaction that waits must hold no rows (updated or deleted locks) that others could wait for.
    on_screen = next((lock for lock in live if lock.comparison_id == after), None)
    if on_screen is not None and on_screen.shown_at is None:
        _start_clock(db=db, lock_id=on_screen.id, now=now, lock_ttl=lock_ttl)
    if stale:
        db.execute(_DELETE_LOCKS, {"ids": stale})
    if comparison_id is not None:
        left, expires_at = random.choice("ab"), now + lock_ttl
        lock_id = db.scalar(
            _INSERT_LOCK[db.get_bind().dialect.name],
            {
                "comparison_id": comparison_id,
                "annotator_id": annotator_id,
                "left": left,
                "slot": 0 if on_screen is None else 1 - on_screen.slot,
                "expires_at": expires_at,
                "shown_at": now if after is None else None,
                "created_at": now,
            },
        )
        if lock_id is not None:
            return _pair(db=db, comparison_id=comparison_id, left=left, expires_at=expires_at)
        # A simultaneous request of this annotator took the place first (PostgreSQL; on SQLite the
        # requests take turns). The insert waited for it to commit, so this statement sees its lock:
        # answer with the pair it reserved, as a request that came a moment later would.
        live, _stale = _own_locks(db=db, annotator_id=annotator_id, now=now)
        waiting = [lock for lock in live if lock.comparison_id != after]
    if not waiting:
        return None
    lock, expires_at = waiting[0], waiting[0].expires_at
    if after is None and lock.shown_at is None:
        expires_at = _start_clock(db=db, lock_id=lock.id, now=now, lock_ttl=lock_ttl)
    return _pair(db=db, comparison_id=lock.comparison_id, left=lock.left, expires_at=expires_at)


# --- statements, built once ----------------------------------------------------------------------
# Building a SQLAlchemy statement costs more than running these on SQLite, so the hot path's
# statements are made once, with bound parameters, and reused.

_LOCKS = table_of(QueueLock)
_OWN_LOCKS = (
    select(
        _LOCKS.c.id,
        _LOCKS.c.comparison_id,
        _LOCKS.c.left,
        _LOCKS.c.slot,
        _LOCKS.c.expires_at,
        _LOCKS.c.shown_at,
        Comparison.status,
        Prompt.is_active,
    )
    .join(Comparison, Comparison.id == _LOCKS.c.comparison_id)
    .join(Prompt, Prompt.id == Comparison.prompt_id)
    .where(_LOCKS.c.annotator_id == bindparam("annotator_id"))
    .order_by(_LOCKS.c.id)
)
# Locks are read and written through the table, not the ORM: no unit-of-work bookkeeping.
_START_CLOCK = (
    update(_LOCKS)
    .where(_LOCKS.c.id == bindparam("lock_id"))
    .values(shown_at=bindparam("now"), expires_at=bindparam("new_expires_at"))
)
# A lock whose place (or pair) the annotator already holds is not inserted and returns no id: the
# claim's loser learns it without an error that would abort its PostgreSQL transaction.
_INSERT_LOCK = {
    "postgresql": postgresql.insert(_LOCKS).on_conflict_do_nothing().returning(_LOCKS.c.id),
    "sqlite": sqlite.insert(_LOCKS).on_conflict_do_nothing().returning(_LOCKS.c.id),
}
_DELETE_LOCKS = delete(_LOCKS).where(_LOCKS.c.id.in_(bindparam("ids", expanding=True)))
_RELEASE = delete(_LOCKS).where(
    _LOCKS.c.comparison_id == bindparam("comparison_id"), _LOCKS.c.annotator_id == bindparam("annotator_id")
)
_DELETE_LOCKS_OF = delete(_LOCKS).where(_LOCKS.c.comparison_id == bindparam("comparison_id"))


def _open_for(tier: ColumnElement[bool], lock: str | None) -> Select[int, int, int]:
    """Ready comparisons of a tier with an open place that the annotator has not judged, skipped or
    passed over, oldest first; lock: None (SQLite), "skip" (FOR UPDATE SKIP LOCKED), "wait" (FOR UPDATE)."""
    live_locks = (
        select(func.count())
        .select_from(QueueLock)
        .where(QueueLock.comparison_id == Comparison.id, QueueLock.expires_at > bindparam("now"))
        .correlate(Comparison)
        .scalar_subquery()
    )
    annotator: BindParameter[int] = bindparam("annotator_id")
    query = (
        select(Comparison.id, Comparison.judgment_count, Comparison.overlap_target)
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .where(
            Comparison.status == ComparisonStatus.ready,
            tier,
            Prompt.is_active.is_(True),
            Comparison.judgment_count + live_locks < Comparison.overlap_target,
            ~comparisons_service.judged_by(annotator),
            ~exists().where(Skip.comparison_id == Comparison.id, Skip.annotator_id == annotator),
            Comparison.id.not_in(bindparam("passed_over", expanding=True)),
        )
        .order_by(Comparison.id)
        .limit(1)
    )
    return query.with_for_update(of=Comparison, skip_locked=lock == "skip") if lock else query


# Tiers, in the order the queue serves them (gold first only when the gold rate says so).
_GOLD = Comparison.is_gold.is_(True)
_IN_PROGRESS = Comparison.is_gold.is_(False) & (Comparison.judgment_count > 0)
_FRESH = Comparison.is_gold.is_(False) & (Comparison.judgment_count == 0)
_OPEN = {
    (name, lock): _open_for(tier, lock)
    for name, tier in (("gold", _GOLD), ("in_progress", _IN_PROGRESS), ("fresh", _FRESH))
    for lock in (None, "skip", "wait")
}
_LIVE_LOCK_COUNT = (
    select(func.count())
    .select_from(QueueLock)
    .where(
        QueueLock.comparison_id == bindparam("comparison_id"),
        QueueLock.expires_at > bindparam("now"),
        QueueLock.annotator_id != bindparam("except_annotator"),
    )
)
_A, _B = aliased(Completion), aliased(Completion)
_PAIR_CONTENT = (
    select(Prompt.messages, _A.text, _B.text)
    .select_from(Comparison)
    .join(Prompt, Prompt.id == Comparison.prompt_id)
    .join(_A, _A.id == Comparison.completion_a_id)
    .join(_B, _B.id == Comparison.completion_b_id)
    .where(Comparison.id == bindparam("comparison_id"))
)
_LOCK_OF = select(QueueLock).where(
    QueueLock.comparison_id == bindparam("comparison_id"), QueueLock.annotator_id == bindparam("annotator_id")
)
_SKIP_OF = select(Skip).where(
    Skip.comparison_id == bindparam("comparison_id"), Skip.annotator_id == bindparam("annotator_id")
)
_JUDGED = select(Comparison.id).where(
    Comparison.id == bindparam("comparison_id"), comparisons_service.judged_by(bindparam("annotator_id"))
)


def _own_locks(*, db: Session, annotator_id: int, now: datetime) -> tuple[list[Row[*tuple[Any, ...]]], list[int]]:
    """The annotator's usable locks, oldest first, and the ids of the ones to drop (expired, or their
    pair is no longer ready or its prompt inactive)."""
    live, stale = [], []
    for lock in db.execute(_OWN_LOCKS, {"annotator_id": annotator_id}):
        if lock.is_active and lock.status == ComparisonStatus.ready and lock.expires_at > now:
            live.append(lock)
        else:
            stale.append(lock.id)
    return live, stale


def _start_clock(*, db: Session, lock_id: int, now: datetime, lock_ttl: timedelta) -> datetime:
    """A pair goes on screen: its time spent counts from now, and its TTL starts afresh."""
    expires_at = now + lock_ttl
    db.execute(_START_CLOCK, {"lock_id": lock_id, "now": now, "new_expires_at": expires_at})
    return expires_at


def _pick(*, db: Session, annotator_id: int, now: datetime, gold_rate: float, held: list[int]) -> int | None:
    """Choose and row-lock an open comparison for the annotator; None if there is none."""
    tiers = ["in_progress", "fresh"]
    if gold_rate > 0 and random.random() < gold_rate:
        tiers.insert(0, "gold")
    passed_over = list(held)
    params = {"annotator_id": annotator_id, "now": now, "passed_over": passed_over}
    if db.get_bind().dialect.name != "postgresql":
        # SQLite: this transaction holds the database's write lock; the first open pair is ours.
        row = _first_open(db=db, tiers=tiers, lock=None, params=params)
        return row[0] if row is not None else None
    for _attempt in range(_PICK_ATTEMPTS):
        # Each try runs in a savepoint: rolling it back releases the row lock of a pair we pass over,
        # so this transaction never holds a row while it waits for another (no deadlock cycle), and
        # nobody waits behind a pair we do not take.
        for mode in ("skip", "wait"):
            savepoint = db.begin_nested()
            # First step over rows other pickers hold; only if that finds nothing, wait for them: the
            # pool's last open places may just be in someone's hands for a millisecond.
            row = _first_open(db=db, tiers=tiers, lock=mode, params=params)
            if row is not None:
                break
            savepoint.rollback()
        else:
            # A row FOR UPDATE waited for is re-checked in its new version, but the live-lock count in
            # the same statement still sees the statement's start: a place that the submit it waited
            # for freed (one lock gone, one judgment counted) looks taken twice. A plain read, with a
            # fresh snapshot, tells an empty pool from that; if a place is open, try again.
            if _first_open(db=db, tiers=tiers, lock=None, params=params) is None:
                return None
            continue
        comparison_id, judgment_count, overlap_target = row
        if judgment_count + _live_lock_count(db=db, comparison_id=comparison_id, now=now) < overlap_target:
            savepoint.commit()
            return comparison_id
        savepoint.rollback()
        passed_over.append(comparison_id)
    return None


def _first_open(
    *, db: Session, tiers: list[str], lock: str | None, params: Mapping[str, object]
) -> Row[int, int, int] | None:
    """(id, judgment_count, overlap_target) of the first open comparison of the first tier that has one."""
    for tier in tiers:
        if (row := db.execute(_OPEN[tier, lock], params).first()) is not None:
            return row
    return None


def _live_lock_count(*, db: Session, comparison_id: int, now: datetime, except_annotator: int = 0) -> int:
    """Unexpired locks on the comparison, other than except_annotator's (ids start at 1: 0 is nobody)."""
    return (
        db.scalar(_LIVE_LOCK_COUNT, {"comparison_id": comparison_id, "now": now, "except_annotator": except_annotator})
        or 0
    )


def _pair(*, db: Session, comparison_id: int, left: str, expires_at: datetime) -> Pair:
    messages, text_a, text_b = db.execute(_PAIR_CONTENT, {"comparison_id": comparison_id}).one()
    left_text, right_text = (text_a, text_b) if left == "a" else (text_b, text_a)
    return Pair(
        comparison_id=comparison_id,
        messages=messages,
        left_text=left_text,
        right_text=right_text,
        left=left,
        expires_at=expires_at,
    )


def lock_for_judgment(*, db: Session, comparison: Comparison, annotator_id: int) -> QueueLock:
    """The annotator's lock that entitles them to judge this (row-locked) comparison now, or an error.

    An expired lock is still honoured when nobody else took the place it held: the comparison is
    ready and its judgments plus other annotators' unexpired locks leave room for one more. The
    annotator did the work, and accepting it takes nothing from anyone. If someone else took the
    place meanwhile, their work wins and this submit gets a clear 409.
    """
    if comparison.status == ComparisonStatus.retired:
        raise InvalidState(
            f"Pair {comparison.id} was retired; it no longer takes judgments.", loc=("body", "comparison_id")
        )
    if comparison.status == ComparisonStatus.completed:
        raise InvalidState(
            f"Pair {comparison.id} already has all the judgments it needs.", loc=("body", "comparison_id")
        )
    lock = db.scalar(_LOCK_OF, {"comparison_id": comparison.id, "annotator_id": annotator_id})
    if lock is None:
        raise InvalidState(
            f"Pair {comparison.id} is not reserved for you; get a pair from GET /api/v1/queue/next.",
            loc=("body", "comparison_id"),
        )
    now = utcnow()
    if lock.expires_at <= now:
        others = _live_lock_count(db=db, comparison_id=comparison.id, now=now, except_annotator=annotator_id)
        if comparison.judgment_count + others >= comparison.overlap_target:
            raise InvalidState(
                f"Your reservation of pair {comparison.id} expired and the pair went to someone else.",
                loc=("body", "comparison_id"),
            )
    return lock


def finish(*, db: Session, comparison_id: int, lock_id: int, completed: bool) -> None:
    """After a judgment: the annotator's lock goes, and a completed comparison keeps no locks at all."""
    if completed:
        db.execute(_DELETE_LOCKS_OF, {"comparison_id": comparison_id})
    else:
        db.execute(_DELETE_LOCKS, {"ids": [lock_id]})


def release(*, db: Session, annotator_id: int, comparison_id: int) -> bool:
    """Hand a pair back to the pool without judging it (the page does this with its prefetched pair
    when it is closed). Returns whether the annotator held it; releasing twice is harmless."""
    result = db.execute(_RELEASE, {"comparison_id": comparison_id, "annotator_id": annotator_id})
    return rowcount(result) > 0


def skip(*, db: Session, annotator_id: int, comparison_id: int, reason: str) -> tuple[Skip, bool]:
    """Pass on a pair held by the annotator, with a reason; it is never offered to them again.

    Returns (skip, created): skipping the same pair again returns the first skip unchanged.
    """
    comparison = comparisons_service.get_for_update_or_raise(
        db=db, comparison_id=comparison_id, loc=("path", "comparison_id")
    )
    ids = {"comparison_id": comparison.id, "annotator_id": annotator_id}
    existing = db.scalar(_SKIP_OF, ids)
    if existing is not None:
        return existing, False
    if db.scalar(_JUDGED, ids) is not None:
        raise Conflict(
            f"You already judged pair {comparison.id}; there is nothing to skip.", loc=("path", "comparison_id")
        )
    if not release(db=db, annotator_id=annotator_id, comparison_id=comparison.id):
        raise InvalidState(
            f"Pair {comparison.id} is not reserved for you; only a pair you were shown can be skipped.",
            loc=("path", "comparison_id"),
        )
    entry = Skip(comparison_id=comparison.id, annotator_id=annotator_id, reason=reason.strip())
    db.add(entry)
    db.flush()
    return entry, True
