"""The sampler's database side: prompts by need, the pool, baseline versions, retiring superseded pairs."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from app.comparisons.models import Comparison, ComparisonStatus
from app.policies import service as policy_service
from app.policies.models import PolicyStatus
from app.prompts import service as prompt_service
from app.sampler import service
from tests.factories import make_comparison, make_prompt, publish_policy_version


def by_need(db, limit=10, exclude=frozenset()) -> list[int]:
    with db.session() as session:
        return [p.id for p in service.prompts_by_need(db=session, limit=limit, exclude_ids=exclude)]


def test_prompts_with_fewest_judgments_then_fewest_ready_pairs_come_first(db, active_policy):
    judged, ready, fresh, inactive, twice_judged = (
        make_prompt(db, text=t) for t in ("judged", "ready", "fresh", "inactive", "twice")
    )
    make_comparison(
        db, prompt_id=judged, version_a_id=active_policy, status=ComparisonStatus.completed, judgment_count=1
    )
    make_comparison(db, prompt_id=ready, version_a_id=active_policy)
    make_comparison(
        db, prompt_id=twice_judged, version_a_id=active_policy, status=ComparisonStatus.retired, judgment_count=1
    )
    make_comparison(
        db, prompt_id=twice_judged, version_a_id=active_policy, status=ComparisonStatus.completed, judgment_count=1
    )
    with db.session() as session:
        prompt_service.deactivate(db=session, prompt_id=inactive)
    assert by_need(db) == [fresh, ready, judged, twice_judged]
    assert by_need(db, limit=2) == [fresh, ready]
    assert by_need(db, exclude={fresh}) == [ready, judged, twice_judged]


def test_pool_counts_ready_pairs_only(db, active_policy):
    prompt = make_prompt(db, text="p")
    for status in (
        ComparisonStatus.ready,
        ComparisonStatus.ready,
        ComparisonStatus.completed,
        ComparisonStatus.retired,
    ):
        make_comparison(db, prompt_id=prompt, version_a_id=active_policy, status=status)
    with db.session() as session:
        assert service.pool_size(db=session) == 2


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
    reply = service.NewCompletion(
        policy_version_id=active_policy, text="a\x00b", token_count=3, finish_reason="length", sampling={}
    )
    with db.session() as session:
        comparison_id = service.store_comparison(db=session, prompt_id=prompt, a=reply, b=reply, overlap=1).id
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

    def statuses() -> dict[int, str]:
        with db.session() as session:
            return {c.id: c.status.value for c in session.scalars(select(Comparison))}

    with db.session() as session:
        assert service.retire_superseded(db=session, active_version_id=v2, mode="none") == 0
        assert service.retire_superseded(db=session, active_version_id=v2, mode="unjudged") == 1
    assert statuses() == {
        old_unjudged: "retired",
        old_half_judged: "ready",
        old_completed: "completed",
        cross: "ready",
        new: "ready",
    }
    with db.session() as session:
        assert service.retire_superseded(db=session, active_version_id=v2, mode="all") == 1
    assert statuses()[old_half_judged] == "retired"
    with db.session() as session, pytest.raises(ValueError, match="mode must be none, unjudged or all"):
        service.retire_superseded(db=session, active_version_id=v2, mode="some")


def test_baseline_is_the_previous_version_or_the_configured_one(settings, db, tiny_policy_dir, active_policy):
    v2 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    v3 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=3, parent_id=v2, status=PolicyStatus.candidate
    )
    with db.session() as session:
        first, third = (policy_service.get_or_raise(db=session, version_id=i) for i in (active_policy, v3))
        assert service.baseline_version(db=session, active=third).number == 2
        assert service.baseline_version(db=session, active=third, number=1).number == 1
        assert service.baseline_version(db=session, active=third, number=3) is None
        assert service.baseline_version(db=session, active=third, number=9) is None
        assert service.baseline_version(db=session, active=first) is None


def test_seed_changes_with_every_stored_batch(db, active_policy):
    with db.session() as session:
        before = service.next_seed(db=session, base_seed=5)
    make_comparison(db, prompt_id=make_prompt(db, text="p"), version_a_id=active_policy)
    with db.session() as session:
        assert service.next_seed(db=session, base_seed=5) == before + 2
        assert service.next_seed(db=session, base_seed=6) != service.next_seed(db=session, base_seed=5)


def test_overlap_share():
    rng = random.Random(0)
    draws = [service.overlap_target(rng=rng, target=1, share=0.25) for _ in range(4000)]
    assert set(draws) == {1, 2} and 0.22 < draws.count(2) / len(draws) < 0.28
    assert {service.overlap_target(rng=rng, target=3, share=1.0) for _ in range(10)} == {3}
    assert {service.overlap_target(rng=rng, target=1, share=0.0) for _ in range(10)} == {1}
