"""Where the next pair is chosen: order, exclusions, overlap, locks and their expiry, on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.comparisons.models import Comparison, ComparisonStatus
from app.core.db import utcnow
from app.core.errors import Conflict, InvalidState, NotFound
from app.judgments import service as judgment_service
from app.judgments.models import ScreenChoice
from app.prompts.models import Prompt
from app.queue import service
from app.queue.models import QueueLock, Skip
from tests.factories import make_annotators, make_comparison, make_comparisons, make_prompt

TTL = timedelta(minutes=10)


def next_for(db, annotator_id, *, after=None, gold_rate=0.0):
    with db.write_session() as session:
        return service.next_for(db=session, annotator_id=annotator_id, lock_ttl=TTL, gold_rate=gold_rate, after=after)


def judge(db, annotator_id, comparison_id, side=ScreenChoice.left):
    with db.write_session() as session:
        return judgment_service.submit(
            db=session, annotator_id=annotator_id, comparison_id=comparison_id, side=side, rationale_max_chars=100
        )[0].id


def locks(db, **where):
    with db.session() as session:
        query = select(QueueLock).filter_by(**where).order_by(QueueLock.id)
        return list(session.scalars(query))


def expire_locks(db, **where):
    with db.session() as session:
        past = utcnow() - timedelta(seconds=1)
        session.execute(update(QueueLock).filter_by(**where).values(expires_at=past))


@pytest.fixture
def annotators(db):
    return make_annotators(db, 4)


def test_next_locks_the_oldest_pair_and_shows_it_blind(db, annotators):
    conversation = make_prompt(
        db, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    )
    first, _second = make_comparisons(db, 2, prompt_id=conversation)
    pair = next_for(db, annotators[0])
    assert pair.comparison_id == first
    assert pair.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    [lock] = locks(db, annotator_id=annotators[0])
    assert (lock.comparison_id, lock.left) == (first, pair.left)
    assert pair.left_text.endswith(f"answer {pair.left}")
    assert pair.right_text.endswith("answer " + ("b" if pair.left == "a" else "a"))
    assert lock.expires_at == pair.expires_at
    assert lock.shown_at is not None


def test_reload_shows_the_same_pair_with_the_same_sides(db, annotators):
    make_comparisons(db, 3)
    first = next_for(db, annotators[0])
    again = next_for(db, annotators[0])
    assert (again.comparison_id, again.left) == (first.comparison_id, first.left)
    assert len(locks(db, annotator_id=annotators[0])) == 1


def test_left_right_order_is_randomized_per_showing(db, annotators):
    make_comparisons(db, 40)
    sides = set()
    for _ in range(40):
        pair = next_for(db, annotators[0])
        sides.add(pair.left)
        with db.write_session() as session:
            service.release(db=session, annotator_id=annotators[0], comparison_id=pair.comparison_id)
            session.add(Skip(comparison_id=pair.comparison_id, annotator_id=annotators[0]))
    assert sides == {"a", "b"}


def test_a_locked_pair_is_not_handed_to_a_second_annotator(db, annotators):
    first, second = make_comparisons(db, 2)
    assert next_for(db, annotators[0]).comparison_id == first
    assert next_for(db, annotators[1]).comparison_id == second
    assert next_for(db, annotators[2]) is None


def test_overlap_target_two_goes_to_two_annotators_at_once_never_three(db, annotators):
    [pair_id] = make_comparisons(db, 1, overlap_target=2)
    assert next_for(db, annotators[0]).comparison_id == pair_id
    assert next_for(db, annotators[1]).comparison_id == pair_id
    assert next_for(db, annotators[2]) is None
    judge(db, annotators[0], pair_id)
    # One judgment plus one live lock still fill the target of two.
    assert next_for(db, annotators[2]) is None


def test_never_a_pair_the_annotator_judged_or_skipped(db, annotators):
    judged, skipped, fresh = make_comparisons(db, 3, overlap_target=2)
    assert next_for(db, annotators[0]).comparison_id == judged
    judge(db, annotators[0], judged)
    assert next_for(db, annotators[0]).comparison_id == skipped
    with db.write_session() as session:
        service.skip(db=session, annotator_id=annotators[0], comparison_id=skipped, reason="unclear")
    assert next_for(db, annotators[0]).comparison_id == fresh


def test_pairs_in_progress_come_before_fresh_ones(db, annotators):
    older, in_progress = make_comparisons(db, 2, overlap_target=2)
    with db.session() as session:
        session.execute(update(Comparison).where(Comparison.id == in_progress).values(judgment_count=1))
    assert next_for(db, annotators[0]).comparison_id == in_progress
    assert next_for(db, annotators[1]).comparison_id == older


def test_gold_pairs_are_mixed_in_at_the_configured_rate(db, annotators):
    [regular] = make_comparisons(db, 1)
    [gold] = make_comparisons(db, 1, is_gold=True, overlap_target=100)
    assert next_for(db, annotators[0], gold_rate=1.0).comparison_id == gold
    assert next_for(db, annotators[1], gold_rate=0.0).comparison_id == regular
    # Gold is never served as filler at rate 0, even when nothing else is left.
    assert next_for(db, annotators[2], gold_rate=0.0) is None


def test_retired_pairs_and_pairs_of_inactive_prompts_are_never_handed_out(db, annotators):
    [retired] = make_comparisons(db, 1)
    make_comparison(db, prompt_id=make_prompt(db, active=False))
    with db.session() as session:
        session.execute(update(Comparison).where(Comparison.id == retired).values(status=ComparisonStatus.retired))
    assert next_for(db, annotators[0]) is None


def test_a_lock_on_a_pair_retired_meanwhile_is_dropped(db, annotators):
    first, second = make_comparisons(db, 2)
    assert next_for(db, annotators[0]).comparison_id == first
    with db.session() as session:
        session.execute(update(Comparison).where(Comparison.id == first).values(status=ComparisonStatus.retired))
    assert next_for(db, annotators[0]).comparison_id == second
    assert [lock.comparison_id for lock in locks(db, annotator_id=annotators[0])] == [second]


def test_a_lock_on_a_prompt_deactivated_meanwhile_is_dropped(db, annotators):
    first, second = make_comparisons(db, 2)
    assert next_for(db, annotators[0]).comparison_id == first
    with db.session() as session:
        prompt_id = session.get(Comparison, first).prompt_id
        session.execute(update(Prompt).where(Prompt.id == prompt_id).values(is_active=False))
    assert next_for(db, annotators[0]).comparison_id == second


def test_expired_locks_return_to_the_pool(db, annotators):
    [pair_id] = make_comparisons(db, 1)
    assert next_for(db, annotators[0]).comparison_id == pair_id
    assert next_for(db, annotators[1]) is None
    expire_locks(db, annotator_id=annotators[0])
    assert next_for(db, annotators[1]).comparison_id == pair_id


def test_the_annotators_own_expired_lock_is_replaced_by_a_fresh_showing(db, annotators):
    [pair_id] = make_comparisons(db, 1)
    next_for(db, annotators[0])
    expire_locks(db, annotator_id=annotators[0])
    assert next_for(db, annotators[0]).comparison_id == pair_id
    [lock] = locks(db, annotator_id=annotators[0])
    assert lock.expires_at > utcnow()


def test_prefetch_locks_a_second_pair_and_never_more(db, annotators):
    first, second, _third = make_comparisons(db, 3)
    assert next_for(db, annotators[0]).comparison_id == first
    assert next_for(db, annotators[0], after=first).comparison_id == second
    assert next_for(db, annotators[0], after=first).comparison_id == second
    # A prefetched pair's clock has not started; a reload still shows the first pair.
    assert locks(db, comparison_id=second)[0].shown_at is None
    assert next_for(db, annotators[0]).comparison_id == first
    assert next_for(db, annotators[0], after=second).comparison_id == first
    assert [lock.comparison_id for lock in locks(db, annotator_id=annotators[0])] == [first, second]


def test_naming_the_prefetched_pair_on_screen_starts_its_clock_and_ttl(db, annotators):
    first, second, _third = make_comparisons(db, 3)
    next_for(db, annotators[0])
    next_for(db, annotators[0], after=first)
    with db.session() as session:
        session.execute(
            update(QueueLock)
            .where(QueueLock.comparison_id == second)
            .values(expires_at=utcnow() + timedelta(seconds=30))
        )
    judge(db, annotators[0], first)
    before = utcnow()
    assert next_for(db, annotators[0], after=second).comparison_id not in (first, second)
    [lock] = locks(db, comparison_id=second)
    assert lock.shown_at >= before
    assert lock.expires_at >= before + TTL


def test_release_returns_the_pair_to_the_pool(db, annotators):
    [pair_id] = make_comparisons(db, 1)
    next_for(db, annotators[0])
    with db.write_session() as session:
        assert service.release(db=session, annotator_id=annotators[0], comparison_id=pair_id) is True
        assert service.release(db=session, annotator_id=annotators[0], comparison_id=pair_id) is False
    assert next_for(db, annotators[1]).comparison_id == pair_id


def test_skip_records_the_reason_frees_the_pair_and_is_idempotent(db, annotators):
    [pair_id] = make_comparisons(db, 1)
    next_for(db, annotators[0])
    with db.write_session() as session:
        skip, created = service.skip(
            db=session, annotator_id=annotators[0], comparison_id=pair_id, reason="  I can't judge this topic "
        )
        assert (skip.reason, created) == ("I can't judge this topic", True)
    with db.write_session() as session:
        again, created = service.skip(db=session, annotator_id=annotators[0], comparison_id=pair_id, reason="x")
        assert (again.id, again.reason, created) == (skip.id, "I can't judge this topic", False)
    assert locks(db) == []
    assert next_for(db, annotators[1]).comparison_id == pair_id


def test_skip_needs_the_pair_to_be_reserved_for_you(db, annotators):
    [pair_id] = make_comparisons(db, 1)
    next_for(db, annotators[0])
    with pytest.raises(InvalidState, match="not reserved for you"), db.write_session() as session:
        service.skip(db=session, annotator_id=annotators[1], comparison_id=pair_id, reason="meh")
    with pytest.raises(NotFound, match="does not exist"), db.write_session() as session:
        service.skip(db=session, annotator_id=annotators[1], comparison_id=pair_id + 1000, reason="meh")


def test_skip_after_judging_is_refused(db, annotators):
    [pair_id] = make_comparisons(db, 1, overlap_target=2)
    next_for(db, annotators[0])
    judge(db, annotators[0], pair_id)
    with pytest.raises(Conflict, match="already judged"), db.write_session() as session:
        service.skip(db=session, annotator_id=annotators[0], comparison_id=pair_id, reason="meh")
