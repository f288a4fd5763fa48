"""Many annotators at once, on SQLite and PostgreSQL: no pair goes to more annotators than it needs,
a retried submit stores one judgment, expired locks return to the pool, and one annotator's
simultaneous requests reserve one pair (per place), never more."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from app.comparisons.models import Comparison, ComparisonStatus
from app.core.db import utcnow
from app.judgments import service as judgment_service
from app.judgments.models import Judgment, ScreenChoice
from app.queue import service
from app.queue.models import QueueLock
from tests.factories import make_annotators, make_comparisons

TTL = timedelta(minutes=10)


def run_together(fn, args_list):
    """Run fn(*args) for every args in its own thread, released at the same moment; return results."""
    barrier = threading.Barrier(len(args_list))

    def call(args):
        barrier.wait()
        return fn(*args)

    with ThreadPoolExecutor(len(args_list)) as pool:
        return list(pool.map(call, args_list))


def take(db, annotator_id, after=None):
    with db.write_session() as session:
        pair = service.next_for(db=session, annotator_id=annotator_id, lock_ttl=TTL, gold_rate=0.0, after=after)
        return pair.comparison_id if pair else None


def held_by(db, annotator_id):
    with db.session() as session:
        query = select(QueueLock.comparison_id).where(QueueLock.annotator_id == annotator_id)
        return sorted(session.scalars(query))


def test_concurrent_pickers_never_exceed_a_pairs_overlap_target(db):
    targets = [1, 1, 2, 3, 1, 2]
    ids = [make_comparisons(db, 1, overlap_target=t)[0] for t in targets]
    annotators = make_annotators(db, 16)
    taken = run_together(lambda a: take(db, a), [(a,) for a in annotators])
    handed = Counter(t for t in taken if t is not None)
    assert all(handed[pair_id] <= target for pair_id, target in zip(ids, targets, strict=True))
    # Every open place was handed out once: 10 places, 16 annotators.
    assert sum(handed.values()) == sum(targets)
    with db.session() as session:
        per_pair = Counter(session.scalars(select(QueueLock.comparison_id)))
    assert per_pair == handed


def test_concurrent_annotators_judging_until_the_pool_is_dry_fill_every_target_exactly(db):
    targets = [1, 2, 3, 1, 2, 1, 1, 3]
    ids = [make_comparisons(db, 1, overlap_target=t)[0] for t in targets]
    annotators = make_annotators(db, 8)

    def work(annotator_id):
        judged = []
        while (pair_id := take(db, annotator_id)) is not None:
            with db.write_session() as session:
                judgment_service.submit(
                    db=session,
                    annotator_id=annotator_id,
                    comparison_id=pair_id,
                    side=ScreenChoice.left,
                    rationale_max_chars=10,
                )
            judged.append(pair_id)
        return judged

    # A submit refused because someone else held the last place would raise here and fail the test.
    results = run_together(work, [(a,) for a in annotators])
    for judged in results:
        assert len(judged) == len(set(judged))
    with db.session() as session:
        counts = Counter(session.scalars(select(Judgment.comparison_id)))
        statuses = {c.id: (c.judgment_count, c.status) for c in session.scalars(select(Comparison))}
        assert session.scalars(select(QueueLock)).all() == []
    assert [counts[i] for i in ids] == targets
    assert all(statuses[i] == (t, ComparisonStatus.completed) for i, t in zip(ids, targets, strict=True))


def test_a_submit_retried_concurrently_stores_one_judgment(db):
    [pair_id] = make_comparisons(db, 1)
    [annotator] = make_annotators(db, 1)
    take(db, annotator)

    def submit():
        with db.write_session() as session:
            judgment, created = judgment_service.submit(
                db=session,
                annotator_id=annotator,
                comparison_id=pair_id,
                side=ScreenChoice.right,
                client_request_id="double-click",
                rationale_max_chars=10,
            )
            return judgment.id, created

    outcomes = run_together(submit, [()] * 6)
    assert len({judgment_id for judgment_id, _ in outcomes}) == 1
    assert sorted(created for _, created in outcomes) == [False] * 5 + [True]
    with db.session() as session:
        assert len(session.scalars(select(Judgment)).all()) == 1
        assert session.get(Comparison, pair_id).judgment_count == 1


def test_expired_locks_return_to_the_pool_under_concurrency(db):
    targets = [1, 2, 1]
    ids = [make_comparisons(db, 1, overlap_target=t)[0] for t in targets]
    first_wave, second_wave = make_annotators(db, 4, prefix="early"), make_annotators(db, 8, prefix="late")
    assert sorted(filter(None, run_together(lambda a: take(db, a), [(a,) for a in first_wave]))) == sorted(
        [ids[0], ids[1], ids[1], ids[2]]
    )
    with db.session() as session:
        session.execute(update(QueueLock).values(expires_at=utcnow() - timedelta(seconds=1)))
    taken = run_together(lambda a: take(db, a), [(a,) for a in second_wave])
    handed = Counter(t for t in taken if t is not None)
    assert handed == Counter(dict(zip(ids, targets, strict=True)))


# Enough simultaneous requests, often enough, that a race left open shows: before the database
# enforced the rule, 20 requests reserved two pairs in about one trial in nine on PostgreSQL.
SAME_ANNOTATOR_REQUESTS, TRIALS = 24, 12


def test_one_annotators_simultaneous_requests_reserve_one_pair(db):
    make_comparisons(db, SAME_ANNOTATOR_REQUESTS)
    for trial in range(TRIALS):
        [annotator] = make_annotators(db, 1, prefix=f"trial{trial}-")
        taken = run_together(take, [(db, annotator)] * SAME_ANNOTATOR_REQUESTS)
        assert taken[0] is not None and set(taken) == {taken[0]}, trial
        assert held_by(db, annotator) == [taken[0]], trial


def test_one_annotators_simultaneous_prefetches_reserve_one_pair_behind(db):
    make_comparisons(db, 2 * SAME_ANNOTATOR_REQUESTS)
    for trial in range(TRIALS):
        [annotator] = make_annotators(db, 1, prefix=f"trial{trial}-")
        on_screen = take(db, annotator)
        behind = run_together(take, [(db, annotator, on_screen)] * SAME_ANNOTATOR_REQUESTS)
        assert behind[0] not in (None, on_screen) and set(behind) == {behind[0]}, trial
        assert held_by(db, annotator) == sorted([on_screen, behind[0]]), trial


def test_simultaneous_api_requests_of_one_annotator_name_one_pair(client, db, annotator_token):
    make_comparisons(db, 3)
    me = client.get("/api/v1/me", headers=annotator_token).json()["id"]
    for trial in range(TRIALS // 2):
        responses = run_together(
            lambda: client.get("/api/v1/queue/next", headers=annotator_token), [()] * SAME_ANNOTATOR_REQUESTS
        )
        assert {r.status_code for r in responses} == {200}, trial
        named = {r.json()["comparison_id"] for r in responses}
        assert len(named) == 1, (trial, named)
        [pair_id] = named
        assert held_by(db, me) == [pair_id], trial
        assert client.post(f"/api/v1/queue/{pair_id}/release", headers=annotator_token).status_code == 204


def test_the_database_refuses_a_lock_beyond_the_annotators_two_places(db):
    """The rule is a constraint, not an outcome of timing: a second lock in a taken place, or a lock in
    a third place, is refused by the database itself, whoever writes it."""
    first, second, third = make_comparisons(db, 3)
    [annotator] = make_annotators(db, 1)

    def add_lock(comparison_id, slot):
        with db.session() as session:
            session.add(
                QueueLock(
                    comparison_id=comparison_id, annotator_id=annotator, left="a", expires_at=utcnow() + TTL, slot=slot
                )
            )

    add_lock(first, 0)
    for slot in (0, 2, -1):
        with pytest.raises(IntegrityError):
            add_lock(second, slot)
    add_lock(second, 1)
    with pytest.raises(IntegrityError):
        add_lock(third, 1)
    assert held_by(db, annotator) == [first, second]


def test_a_picker_that_waited_for_a_submit_takes_the_place_it_left_open(db):
    """PostgreSQL's FOR UPDATE re-checks a row it waited for against the row's new version, but its
    subqueries (the live locks) still see the statement's start: the lock the submit just deleted
    and the judgment it just counted would both fill the pair, and the picker would be told the pool
    is empty while a place is open. On SQLite a picker holds the database's write lock: nothing to wait for."""
    [pair_id] = make_comparisons(db, 1, overlap_target=2)
    first, second = make_annotators(db, 2)
    assert take(db, first) == pair_id
    submitting = db.write_session()
    session = submitting.__enter__()
    judgment_service.submit(
        db=session, annotator_id=first, comparison_id=pair_id, side=ScreenChoice.left, rationale_max_chars=10
    )
    with ThreadPoolExecutor(1) as pool:
        picked = pool.submit(take, db, second)
        try:
            if not db.is_sqlite:
                with db.session() as watcher:  # wait until the picker is blocked on the pair's row lock
                    waiting = text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                    deadline = time.monotonic() + 60  # a loaded machine can take seconds to start the thread
                    while watcher.scalar(waiting) == 0 and time.monotonic() < deadline:
                        time.sleep(0.01)
                    assert watcher.scalar(waiting) == 1
        finally:  # commit in any case: a failed check must not leave the picker waiting for ever
            submitting.__exit__(None, None, None)
        assert picked.result(timeout=10) == pair_id
