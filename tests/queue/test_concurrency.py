"""Many annotators at once, on SQLite and PostgreSQL: no pair goes to more annotators than it needs,
a retried submit stores one judgment, and expired locks return to the pool."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import select, update

from app.comparisons.models import Comparison, ComparisonStatus
from app.core.db import utcnow
from app.judgments import service as judgment_service
from app.judgments.models import Judgment, ScreenChoice
from app.queue import service
from app.queue.models import QueueLock
from tests.builders import make_annotators, make_comparisons

TTL = timedelta(minutes=10)


def run_together(fn, args_list):
    """Run fn(*args) for every args in its own thread, released at the same moment; return results."""
    barrier = threading.Barrier(len(args_list))

    def call(args):
        barrier.wait()
        return fn(*args)

    with ThreadPoolExecutor(len(args_list)) as pool:
        return list(pool.map(call, args_list))


def take(db, annotator_id):
    with db.write_session() as session:
        pair = service.next_for(db=session, annotator_id=annotator_id, lock_ttl=TTL, gold_rate=0.0)
        return pair.comparison_id if pair else None


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
                judgment_service.submit(db=session, annotator_id=annotator_id, comparison_id=pair_id,
                                        side=ScreenChoice.left, rationale_max_chars=10)
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
                db=session, annotator_id=annotator, comparison_id=pair_id, side=ScreenChoice.right,
                client_request_id="double-click", rationale_max_chars=10,
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
    first_wave, second_wave = make_annotators(db, 4, "early"), make_annotators(db, 8, "late")
    assert sorted(filter(None, run_together(lambda a: take(db, a), [(a,) for a in first_wave]))) == sorted(
        [ids[0], ids[1], ids[1], ids[2]])
    with db.session() as session:
        session.execute(update(QueueLock).values(expires_at=utcnow() - timedelta(seconds=1)))
    taken = run_together(lambda a: take(db, a), [(a,) for a in second_wave])
    handed = Counter(t for t in taken if t is not None)
    assert handed == Counter(dict(zip(ids, targets, strict=True)))
