"""The sampler's database side: prompts by need, the pool, baseline versions, seeds and overlap draws."""

from __future__ import annotations

import random

from app.comparisons.models import ComparisonStatus
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
