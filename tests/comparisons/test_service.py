"""A comparison's lifecycle: created ready, counted to completion, retired, marked gold."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.comparisons import service
from app.comparisons.models import Choice, Comparison, ComparisonStatus
from app.comparisons.schemas import NewCompletion
from app.core.errors import NotFound, Unprocessable
from app.judgments.models import Judgment
from app.policies.models import PolicyStatus
from tests.factories import make_annotators, make_comparison, make_comparisons, make_prompt, publish_policy_version


def statuses(db) -> dict[int, str]:
    with db.session() as session:
        return {c.id: c.status.value for c in session.scalars(select(Comparison))}


def test_stored_pair_links_both_completions(db, active_policy):
    prompt = make_prompt(db, text="p")
    comparison_id = make_comparison(db, prompt_id=prompt, version_a_id=active_policy)
    with db.session() as session:
        comparison = session.get(Comparison, comparison_id)
        assert comparison.status is ComparisonStatus.ready and comparison.overlap_target == 1
        assert comparison.completion_a.prompt_id == comparison.completion_b.prompt_id == prompt
        assert comparison.completion_a_id != comparison.completion_b_id


def test_a_nul_byte_in_a_completion_is_stored_as_a_replacement_character(db, active_policy):
    prompt = make_prompt(db, text="p")
    reply = NewCompletion(
        policy_version_id=active_policy, text="a\x00b", token_count=3, finish_reason="length", sampling={}
    )
    with db.session() as session:
        comparison_id = service.create(db=session, prompt_id=prompt, a=reply, b=reply, overlap=1).id
    with db.session() as session:
        assert session.get(Comparison, comparison_id).completion_a.text == "a\ufffdb"


def test_retire_superseded_by_mode(settings, db, tiny_policy_dir, active_policy):
    v2 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    prompt = make_prompt(db, text="p")
    old_unjudged = make_comparison(db, prompt_id=prompt, version_a_id=active_policy)
    old_half_judged = make_comparison(db, prompt_id=prompt, version_a_id=active_policy, judgment_count=1)
    old_completed = make_comparison(
        db, prompt_id=prompt, version_a_id=active_policy, status=ComparisonStatus.completed, judgment_count=1
    )
    cross = make_comparison(db, prompt_id=prompt, version_a_id=v2, version_b_id=active_policy)
    new = make_comparison(db, prompt_id=prompt, version_a_id=v2)

    with db.session() as session:
        assert service.retire_superseded(db=session, active_version_id=v2, mode="none") == 0
        assert service.retire_superseded(db=session, active_version_id=v2, mode="unjudged") == 1
    assert statuses(db) == {
        old_unjudged: "retired",
        old_half_judged: "ready",
        old_completed: "completed",
        cross: "ready",
        new: "ready",
    }
    with db.session() as session:
        assert service.retire_superseded(db=session, active_version_id=v2, mode="all") == 1
    assert statuses(db)[old_half_judged] == "retired"
    with db.session() as session, pytest.raises(ValueError, match="mode must be none, unjudged or all"):
        service.retire_superseded(db=session, active_version_id=v2, mode="some")


def test_retire_for_prompt_retires_only_its_ready_pairs(db, active_policy):
    mine, other = make_prompt(db, text="mine"), make_prompt(db, text="other")
    ready = make_comparison(db, prompt_id=mine, version_a_id=active_policy)
    completed = make_comparison(
        db, prompt_id=mine, version_a_id=active_policy, status=ComparisonStatus.completed, judgment_count=1
    )
    elsewhere = make_comparison(db, prompt_id=other, version_a_id=active_policy)
    with db.session() as session:
        assert service.retire_for_prompt(db=session, prompt_id=mine) == 1
    assert statuses(db) == {ready: "retired", completed: "completed", elsewhere: "ready"}


def test_count_judgment_completes_at_the_overlap_target(db):
    [comparison_id] = make_comparisons(db, 1, overlap_target=2)
    with db.session() as session:
        comparison = service.get_for_update_or_raise(db=session, comparison_id=comparison_id)
        assert service.count_judgment(db=session, comparison=comparison) is False
        assert (comparison.judgment_count, comparison.status) == (1, ComparisonStatus.ready)
    with db.session() as session:
        comparison = service.get_for_update_or_raise(db=session, comparison_id=comparison_id)
        assert comparison.judgment_count == 1
        assert service.count_judgment(db=session, comparison=comparison) is True
        assert (comparison.judgment_count, comparison.status) == (2, ComparisonStatus.completed)
    with db.session() as session:
        stored = service.get(db=session, comparison_id=comparison_id)
        assert (stored.judgment_count, stored.status) == (2, ComparisonStatus.completed)


def test_missing_comparisons(db):
    with db.session() as session:
        assert service.get(db=session, comparison_id=999) is None
        with pytest.raises(NotFound, match="Comparison 999 does not exist.") as console:
            service.get_or_raise(db=session, comparison_id=999)
        assert console.value.loc == ["comparison_id"]
        # The annotation API names it a pair, in the request body.
        with pytest.raises(NotFound, match="Pair 999 does not exist.") as api:
            service.get_for_update_or_raise(db=session, comparison_id=999)
        assert api.value.loc == ["body", "comparison_id"]


def test_judged_by_tells_whose_judgment_a_pair_has(db):
    judged, unjudged = make_comparisons(db, 2)
    alice, bob = make_annotators(db, 2)
    with db.session() as session:
        session.add(Judgment(comparison_id=judged, annotator_id=alice, choice=Choice.a, shown_left="a"))
        session.flush()
        by = {
            annotator: set(session.scalars(select(Comparison.id).where(service.judged_by(annotator))))
            for annotator in (alice, bob)
        }
    assert by == {alice: {judged}, bob: set()}
    assert unjudged not in by[alice]


def test_gold_is_set_listed_and_cleared(db):
    first, second, third = make_comparisons(db, 3)
    with db.session() as session:
        gold = service.set_gold(db=session, comparison_id=first, choice="tie")
        assert (gold.is_gold, gold.gold_choice) == (True, Choice.tie)
        service.set_gold(db=session, comparison_id=second, choice="b")
    with db.session() as session:
        assert [c.id for c in service.list_gold(db=session)] == [second, first]
        assert [c.id for c in service.list_recent(db=session, limit=5)] == [third]
        cleared = service.clear_gold(db=session, comparison_id=second)
        assert (cleared.is_gold, cleared.gold_choice) == (False, None)
    with db.session() as session:
        assert [c.id for c in service.list_gold(db=session)] == [first]
        assert [c.id for c in service.list_recent(db=session, limit=1)] == [third]


def test_gold_refusals(db):
    [comparison_id] = make_comparisons(db, 1)
    with db.session() as session:
        with pytest.raises(Unprocessable, match="Expected answer must be one of a, b, tie, both_bad") as bad:
            service.set_gold(db=session, comparison_id=comparison_id, choice="left")
        assert bad.value.loc == ["choice"]
        with pytest.raises(NotFound, match="Comparison 999 does not exist."):
            service.set_gold(db=session, comparison_id=999, choice="a")
        with pytest.raises(NotFound, match="Comparison 999 does not exist."):
            service.clear_gold(db=session, comparison_id=999)
    assert statuses(db) == {comparison_id: "ready"}
    with db.session() as session:
        assert not service.get_or_raise(db=session, comparison_id=comparison_id).is_gold
