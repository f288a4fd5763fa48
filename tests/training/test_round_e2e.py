"""Whole rounds through the real worker and the real `python -m trainer.round` subprocess, on the
embedded policy's "test" preset with a scripted annotator who prefers the shorter answer.

The preset's replies are gibberish, so a preference about their content would be noise; their length
is a signal a tiny reward model learns from ~100 pairs and PPO can act on within a few updates.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from safetensors.torch import load_file

from app.policies.models import PolicyVersion
from app.training import service
from app.training.executors import LocalExecutor
from app.training.models import RoundMetric, RoundStatus
from app.training.workdir import round_dir
from app.training.worker import Worker
from tests.factories import make_judged_pair, make_user

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

# Small budgets: a round of a few minutes on 2 CPU cores (most of it PPO's generation).
OVERRIDES = {
    "data": {"heldout_fraction": 0.2},
    "reward": {"num_epochs": 2},
    "ppo": {"learning_rate": 1e-4, "total_episodes": 96, "response_length": 48},
    "evaluate": {"max_prompts": 16, "samples_per_prompt": 2},
    "gates": {"min_score_gain": 0.0},  # the new policy must score higher on held-out prompts
}


@pytest.fixture(scope="session")
def policy_samples(tiny_policy_dir) -> list[tuple[str, str, str]]:
    """(prompt, reply a, reply b) sampled from the policy for 100 prompts of the embedded task."""
    from trainer import generate
    from trainer.embedded import task

    policy = generate.load_policy(str(tiny_policy_dir))
    prompts = [p.text for p in task.sample_prompts(100, seed=3, split="train")]
    samples = generate.generate(
        policy,
        [[{"role": "user", "content": p}] for p in prompts],
        n_per_prompt=2,
        params=generate.SamplingParams(1.0, 1.0, 48),
        seed=0,
    )
    return [(p, a.text, b.text) for p, (a, b) in zip(prompts, samples, strict=True)]


def _judge_shorter(db, policy_version_id: int, samples) -> None:
    annotator = make_user(db, "ann")
    with db.session() as session:
        for prompt, a, b in samples:
            choice = "a" if len(a) < len(b) else "b" if len(b) < len(a) else "tie"
            make_judged_pair(
                session,
                annotator_id=annotator,
                choice=choice,
                prompt=prompt,
                version_a_id=policy_version_id,
                text_a=a,
                text_b=b,
            )


def _launch(db, settings, overrides) -> int:
    with db.session() as session:
        return service.launch(db=session, settings=settings, requested_by=None, config_overrides=overrides).id


def _round(db, round_id):
    with db.session() as session:
        return service.get_or_raise(db=session, round_id=round_id)


def _versions(db) -> list[tuple[int, str, int | None]]:
    with db.session() as session:
        return [
            (v.number, v.status.value, v.parent_id) for v in session.query(PolicyVersion).order_by(PolicyVersion.number)
        ]


def test_a_round_publishes_a_policy_that_scores_higher_on_held_out_prompts(settings, db, active_policy, policy_samples):
    _judge_shorter(db, active_policy, policy_samples)
    round_id = _launch(db, settings, OVERRIDES)

    started = time.monotonic()
    Worker(settings=settings, db=db, executor=LocalExecutor()).step()
    wall_s = time.monotonic() - started

    round_ = _round(db, round_id)
    assert round_.status == RoundStatus.succeeded, f"{round_.error}\n{round_.log_tail}"
    evaluation, gates = round_.results["evaluate"], round_.config["gates"]
    assert evaluation["eval/score_new"] > evaluation["eval/score_old"]
    assert 0 < evaluation["eval/kl"] <= gates["max_kl"]
    assert evaluation["eval/eos_rate"] >= gates["min_eos_rate"]
    assert round_.results["reward_model"]["rm/eval/accuracy"] >= gates["min_rm_accuracy"]
    assert all(v["passed"] for v in round_.results["gates"].values())
    assert _versions(db) == [(1, "archived", None), (2, "active", active_policy)]

    with db.session() as session:
        base, new = session.get(PolicyVersion, active_policy), session.get(PolicyVersion, round_.policy_version_id)
        stages = {stage for (stage,) in session.query(RoundMetric.stage).filter_by(round_id=round_id)}
    before, after = load_file(f"{base.path}/model.safetensors"), load_file(f"{new.path}/model.safetensors")
    assert before.keys() == after.keys()
    assert any(not before[k].equal(after[k]) for k in before)
    assert stages == {"reward_model", "ppo"}
    print(f"\nround wall time {wall_s:.0f} s; evaluation {evaluation}")


def test_a_round_killed_mid_ppo_publishes_nothing_and_its_retry_resumes_and_completes(
    settings, db, active_policy, policy_samples
):
    _judge_shorter(db, active_policy, policy_samples)
    overrides = OVERRIDES | {
        "ppo": OVERRIDES["ppo"] | {"total_episodes": 64, "checkpoint_every": 1},
        "evaluate": {"max_prompts": 8, "samples_per_prompt": 1},
    }
    round_id = _launch(db, settings, overrides)
    checkpoint = round_dir(settings, round_id) / "work" / "ppo" / "checkpoint" / "state.pt"

    worker = Worker(settings=settings, db=db, executor=LocalExecutor())
    thread = threading.Thread(target=worker.step)
    thread.start()
    deadline = time.monotonic() + 600
    while not checkpoint.exists():
        assert thread.is_alive() and time.monotonic() < deadline, _round(db, round_id).error
        time.sleep(0.2)
    os.killpg(int(_round(db, round_id).handle), signal.SIGKILL)  # as the OOM killer or a power cut would
    thread.join(timeout=120)

    crashed = _round(db, round_id)
    assert crashed.status == RoundStatus.failed and "killed by SIGKILL" in crashed.error
    assert crashed.completed_stages == ["snapshot", "reward_model"]
    assert _versions(db) == [(1, "active", None)]
    assert sorted(p.name for p in (settings.registry_dir / "policy").iterdir()) == ["v0001"]
    assert not (settings.registry_dir / "reward").exists()

    with db.session() as session:
        service.retry(db=session, round_id=round_id)
    worker.step()
    resumed = _round(db, round_id)
    assert resumed.status == RoundStatus.succeeded, f"{resumed.error}\n{resumed.log_tail}"
    assert resumed.results["ppo"]["resumed_from"] >= 1
    assert resumed.results["ppo"]["updates_done"] == 4
    # The reward model was not trained again: its stage's results are the ones from before the kill.
    assert resumed.results["reward_model"] == crashed.results["reward_model"]
    # The version is published; whether it goes live is the activation rule's call on this short run's
    # held-out gain (tests/training/test_activation.py tests that rule), not what this test is about.
    if resumed.results["activation"]["decision"] == "activated":
        assert _versions(db) == [(1, "archived", None), (2, "active", active_policy)]
    else:
        assert _versions(db) == [(1, "active", None), (2, "candidate", active_policy)]
    with db.session() as session:
        steps = [
            s
            for (s,) in session.query(RoundMetric.step)
            .filter_by(round_id=round_id, stage="ppo")
            .order_by(RoundMetric.step)
        ]
    assert steps == [1, 2, 3, 4]  # the steps logged again after the resume replaced the killed run's
