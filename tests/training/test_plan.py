"""A round's plan (app/training/plan.py): the configuration a launch would store, what its snapshot would
hold, every check it would fail with the numbers, and that it writes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.core.errors import Unprocessable
from app.prompts.models import Prompt
from app.training import snapshot
from app.training.models import TrainingRound
from app.training.plan import plan_round
from tests.factories import make_judged_pair, make_policy_version, make_user
from tests.training.conftest import add_preferences


def _plan(db, settings, **overrides):
    with db.session() as session:
        return plan_round(db=session, settings=settings, overrides=overrides)


def _shortfalls(plan) -> dict[str, tuple[int, int]]:
    return {s.what: (s.there, s.needed) for s in plan.shortfalls}


def test_enough_data_is_possible_and_counts_what_the_snapshot_then_writes(db, settings, trained_data, tmp_path):
    plan = _plan(db, settings)
    assert plan.possible and plan.shortfalls == []
    # 180 usable judgments: the share aims at ~100 held-out pairs, capped at 30 %
    assert plan.derived["data.heldout_fraction"].value == plan.config.data.heldout_fraction == 0.3
    assert plan.counts["strict"] == 180
    assert plan.counts["train_pairs"] + plan.counts["eval_pairs"] == 180
    with db.session() as session:
        written = snapshot.write_snapshot(db=session, round_id=1, config=plan.config, out_dir=tmp_path / "snap")
    assert written.counts == plan.counts
    # the derived gate is the 95 % bound for the held-out pairs counted
    eval_pairs = plan.counts["eval_pairs"]
    assert plan.config.gates.min_rm_accuracy == pytest.approx(0.5 + 1.645 * (0.25 / eval_pairs) ** 0.5, abs=0.001)
    assert plan.config.reward.num_epochs == plan.derived["reward.num_epochs"].value == 2
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(TrainingRound)) == 0  # nothing queued


def test_an_override_wins_and_is_not_marked_derived(db, settings, trained_data):
    plan = _plan(db, settings, reward={"num_epochs": 2, "batch_size": 4}, data={"heldout_fraction": 0.1})
    assert (plan.config.reward.num_epochs, plan.config.reward.batch_size) == (2, 4)
    assert plan.config.data.heldout_fraction == 0.1
    assert not {"reward.num_epochs", "reward.batch_size", "data.heldout_fraction"} & set(plan.derived)
    assert plan.counts["eval_pairs"] == 12  # the split of the share given, not the derived one


def test_too_few_held_out_pairs_says_how_many_and_about_how_many_more_judgments(db, settings, fake_policy):
    ann = make_user(db, "ann")
    add_preferences(db, annotator_id=ann, policy_version_id=fake_policy.id, n_prompts=10, per_prompt=2)
    plan = _plan(db, settings)
    assert not plan.possible
    [held_out] = plan.shortfalls
    assert (held_out.what, held_out.needed) == ("held-out pairs", 10)
    assert held_out.there == plan.counts["eval_pairs"] < 10
    assert f"{held_out.there} held-out pairs, at least 10 needed" in held_out.message
    assert "more usable judgments" in held_out.message


def test_no_data_lists_every_failing_check(db, settings):
    plan = _plan(db, settings)
    assert not plan.possible
    shortfalls = _shortfalls(plan)
    assert shortfalls["policy"] == (0, 1)
    assert shortfalls["judgments"] == (0, 1)
    assert shortfalls["held-out pairs"] == (0, 10)
    assert shortfalls["PPO prompts"] == (0, 1)
    assert "about 34 more usable judgments" in next(s.message for s in plan.shortfalls if s.what == "held-out pairs")


def test_only_ties_and_only_inactive_prompts_are_named(db, settings, tmp_path):
    make_policy_version(db, path=tmp_path)
    ann = make_user(db, "ann")
    for i in range(3):
        make_judged_pair(db, annotator_id=ann, choice="tie", prompt=f"q {i}", prompt_active=False)
    shortfalls = _shortfalls(_plan(db, settings))
    assert shortfalls["judgments preferring one answer"] == (0, 1)
    assert shortfalls["PPO prompts"] == (0, 1)


def test_excluded_annotators_are_named(db, settings, fake_policy):
    gone = make_user(db, "gone", is_active=False)
    make_judged_pair(db, annotator_id=gone, prompt="q")
    assert "usable judgments" in _shortfalls(_plan(db, settings))


def test_learning_rates_come_from_the_policy_size(db, settings, fake_policy):
    plan = _plan(db, settings)
    assert plan.num_parameters == 1  # the fake policy's one tensor of one number
    assert plan.config.reward.learning_rate == plan.derived["reward.learning_rate"].value == 1e-3
    assert plan.config.ppo.learning_rate == plan.derived["ppo.learning_rate"].value == 1e-4


def test_an_invalid_override_is_refused_with_the_field(db, settings, fake_policy):
    with pytest.raises(Unprocessable, match="reward.learning_rate"):
        _plan(db, settings, reward={"learning_rate": -1})
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Prompt)) == 0
