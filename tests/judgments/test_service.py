"""Where a judgment is stored: the lock rule, the left/right mapping, idempotency and counting, on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.comparisons.models import Choice, Comparison, ComparisonStatus
from app.core.db import utcnow
from app.core.errors import Conflict, InvalidState, NotFound, Unprocessable
from app.judgments import service
from app.judgments.models import Judgment, ScreenChoice, Strength
from app.queue import service as queue_service
from app.queue.models import QueueLock
from tests.factories import make_annotators, make_comparisons

TTL = timedelta(minutes=10)


def take(db, annotator_id, *, left=None):
    """Lock the next pair for the annotator; optionally force which completion is on the left."""
    with db.write_session() as session:
        pair = queue_service.next_for(db=session, annotator_id=annotator_id, lock_ttl=TTL, gold_rate=0.0)
        if left is not None:
            session.execute(
                update(QueueLock)
                .where(QueueLock.comparison_id == pair.comparison_id, QueueLock.annotator_id == annotator_id)
                .values(left=left)
            )
    return pair.comparison_id


def submit(db, annotator_id, comparison_id, side=ScreenChoice.left, **kwargs):
    kwargs.setdefault("rationale_max_chars", 50)
    with db.write_session() as session:
        judgment, created = service.submit(
            db=session, annotator_id=annotator_id, comparison_id=comparison_id, side=side, **kwargs
        )
        return judgment.id, created


def stored(db):
    with db.session() as session:
        return list(session.scalars(select(Judgment).order_by(Judgment.id)))


def comparison(db, comparison_id):
    with db.session() as session:
        return session.get(Comparison, comparison_id)


@pytest.fixture
def annotators(db):
    return make_annotators(db, 3)


@pytest.mark.parametrize(
    ("left", "side", "expected"),
    [
        ("a", ScreenChoice.left, Choice.a),
        ("a", ScreenChoice.right, Choice.b),
        ("b", ScreenChoice.left, Choice.b),
        ("b", ScreenChoice.right, Choice.a),
        ("b", ScreenChoice.tie, Choice.tie),
        ("a", ScreenChoice.both_bad, Choice.both_bad),
    ],
)
def test_screen_sides_map_to_completions_through_the_shown_order(db, annotators, left, side, expected):
    make_comparisons(db, 1)
    pair_id = take(db, annotators[0], left=left)
    submit(db, annotators[0], pair_id, side)
    [judgment] = stored(db)
    assert (judgment.choice, judgment.shown_left) == (expected, left)


def test_submit_stores_everything_counts_and_completes_the_pair(db, annotators):
    make_comparisons(db, 1)
    pair_id = take(db, annotators[0])
    judgment_id, created = submit(
        db,
        annotators[0],
        pair_id,
        ScreenChoice.right,
        strength=Strength.much,
        rationale="  B cites its source. ",
        client_request_id="req-1",
        client_time_spent_ms=4200,
        channel="browser",
    )
    assert created
    [judgment] = stored(db)
    assert judgment.id == judgment_id
    assert (judgment.strength, judgment.rationale, judgment.client_request_id, judgment.channel) == (
        3,
        "B cites its source.",
        "req-1",
        "browser",
    )
    assert judgment.client_time_spent_ms == 4200
    assert 0 <= judgment.time_spent_ms < 60_000
    stored_pair = comparison(db, pair_id)
    assert (stored_pair.judgment_count, stored_pair.status) == (1, ComparisonStatus.completed)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(QueueLock)) == 0


def test_time_spent_is_measured_from_when_the_pair_was_shown(db, annotators):
    make_comparisons(db, 1)
    pair_id = take(db, annotators[0])
    with db.session() as session:
        session.execute(update(QueueLock).values(shown_at=utcnow() - timedelta(seconds=7)))
    submit(db, annotators[0], pair_id)
    assert 7000 <= stored(db)[0].time_spent_ms < 60_000


def test_a_pair_with_overlap_two_stays_ready_after_one_judgment(db, annotators):
    [pair_id] = make_comparisons(db, 1, overlap_target=2)
    take(db, annotators[0])
    take(db, annotators[1])
    submit(db, annotators[0], pair_id)
    stored_pair = comparison(db, pair_id)
    assert (stored_pair.judgment_count, stored_pair.status) == (1, ComparisonStatus.ready)
    submit(db, annotators[1], pair_id)
    stored_pair = comparison(db, pair_id)
    assert (stored_pair.judgment_count, stored_pair.status) == (2, ComparisonStatus.completed)


def test_a_retry_with_the_same_request_id_returns_the_first_judgment(db, annotators):
    make_comparisons(db, 1)
    pair_id = take(db, annotators[0])
    first_id, created = submit(db, annotators[0], pair_id, ScreenChoice.left, client_request_id="abc")
    again_id, created_again = submit(db, annotators[0], pair_id, ScreenChoice.right, client_request_id="abc")
    assert (created, created_again, again_id) == (True, False, first_id)
    assert len(stored(db)) == 1
    assert comparison(db, pair_id).judgment_count == 1


def test_a_request_id_reused_for_another_pair_is_refused(db, annotators):
    make_comparisons(db, 2, overlap_target=1)
    first = take(db, annotators[0])
    submit(db, annotators[0], first, client_request_id="same")
    second = take(db, annotators[0])
    with pytest.raises(Conflict, match="already used for your judgment of pair"):
        submit(db, annotators[0], second, client_request_id="same")
    assert len(stored(db)) == 1


def test_judging_a_pair_twice_is_refused(db, annotators):
    [pair_id] = make_comparisons(db, 1, overlap_target=2)
    take(db, annotators[0])
    submit(db, annotators[0], pair_id)
    with pytest.raises(Conflict, match="already judged"):
        submit(db, annotators[0], pair_id, client_request_id="new id")
    assert len(stored(db)) == 1


def test_a_pair_not_locked_to_you_is_refused(db, annotators):
    [pair_id] = make_comparisons(db, 1, overlap_target=2)
    with pytest.raises(InvalidState, match="not reserved for you"):
        submit(db, annotators[0], pair_id)
    take(db, annotators[1])
    with pytest.raises(InvalidState, match="not reserved for you"):
        submit(db, annotators[0], pair_id)
    assert stored(db) == []


def test_a_nonexistent_pair_is_refused(db, annotators):
    with pytest.raises(NotFound, match="Pair 999 does not exist"):
        submit(db, annotators[0], 999)


@pytest.mark.parametrize("status", [ComparisonStatus.retired, ComparisonStatus.completed])
def test_a_pair_no_longer_ready_is_refused_even_with_a_lock(db, annotators, status):
    make_comparisons(db, 1)
    pair_id = take(db, annotators[0])
    with db.session() as session:
        session.execute(update(Comparison).where(Comparison.id == pair_id).values(status=status))
    message = "retired" if status == ComparisonStatus.retired else "all the judgments"
    with pytest.raises(InvalidState, match=message):
        submit(db, annotators[0], pair_id)
    assert stored(db) == []


def test_an_expired_lock_nobody_else_took_is_still_honoured(db, annotators):
    make_comparisons(db, 1)
    pair_id = take(db, annotators[0])
    with db.session() as session:
        session.execute(update(QueueLock).values(expires_at=utcnow() - timedelta(minutes=1)))
    submit(db, annotators[0], pair_id)
    assert len(stored(db)) == 1


def test_an_expired_lock_whose_place_went_to_someone_else_is_refused(db, annotators):
    make_comparisons(db, 1)
    pair_id = take(db, annotators[0])
    with db.session() as session:
        session.execute(update(QueueLock).values(expires_at=utcnow() - timedelta(minutes=1)))
    assert take(db, annotators[1]) == pair_id
    with pytest.raises(InvalidState, match="expired and the pair went to someone else"):
        submit(db, annotators[0], pair_id)
    submit(db, annotators[1], pair_id)
    assert [j.annotator_id for j in stored(db)] == [annotators[1]]


def test_an_over_long_rationale_is_refused(db, annotators):
    make_comparisons(db, 1)
    pair_id = take(db, annotators[0])
    with pytest.raises(Unprocessable, match="limited to 50 characters"):
        submit(db, annotators[0], pair_id, rationale="x" * 51)
    assert stored(db) == []
    submit(db, annotators[0], pair_id, rationale="x" * 50)


def test_strength_with_a_tie_is_refused(db, annotators):
    make_comparisons(db, 1)
    pair_id = take(db, annotators[0])
    with pytest.raises(Unprocessable, match="Strength applies only"):
        submit(db, annotators[0], pair_id, ScreenChoice.tie, strength=Strength.slightly)


def test_counts_today_and_in_total(db, annotators):
    make_comparisons(db, 3)
    for _ in range(3):
        submit(db, annotators[0], take(db, annotators[0]))
    with db.session() as session:
        two_days_ago = utcnow() - timedelta(days=2)
        session.execute(update(Judgment).where(Judgment.id == 1).values(created_at=two_days_ago))
        midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        assert service.counts_for(db=session, annotator_id=annotators[0], since=midnight) == (2, 3)
        assert service.counts_for(db=session, annotator_id=annotators[1], since=midnight) == (0, 0)


def test_the_judgments_of_a_pair_come_oldest_first_with_their_annotators(db, annotators):
    [pair_id, other] = make_comparisons(db, 2, overlap_target=2)
    second, first = annotators[1], annotators[2]
    for annotator in (first, second):
        assert take(db, annotator) == pair_id
        submit(db, annotator, pair_id, side=ScreenChoice.tie)
    with db.session() as session:
        listed = service.list_for_comparison(db=session, comparison_id=pair_id)
        assert [(judgment.annotator_id, username) for judgment, username in listed] == [
            (first, "annotator2"),
            (second, "annotator1"),
        ]
        assert all(judgment.choice is Choice.tie for judgment, _ in listed)
        assert service.list_for_comparison(db=session, comparison_id=other) == []
