"""Arranging what the console shows: a training round driven through the same service calls a worker
makes, and a lived-in dataset for the browser tests' screenshots."""

from __future__ import annotations

import math
import random
from datetime import timedelta

from sqlalchemy import func, select

from app.auth.models import User
from app.comparisons.models import Choice
from app.core.config import Settings
from app.core.db import Database, utcnow
from app.judgments.models import Judgment
from app.policies import service as policies_service
from app.policies.models import PolicyStatus
from app.training import service as training_service
from app.training.models import RoundStatus
from tests.factories import make_comparisons, make_judged_pair, make_judgment, make_policy_version, make_user
from trainer import metrics as M

WORKER = "test-worker"


def claim_round(db: Database) -> int:
    """Take the queued round as a worker would; returns its id."""
    with db.write_session() as session:
        round_ = training_service.claim_next(db=session, worker_id=WORKER, executor="local", now=utcnow())
        assert round_ is not None, "no queued round"
        return round_.id


def record_snapshot(db: Database, round_id: int) -> None:
    """The worker has written the round's snapshot: all judgments so far, from the active policy."""
    with db.session() as session:
        training_service.record_snapshot(
            db=session,
            round_id=round_id,
            worker_id=WORKER,
            max_judgment_id=session.scalar(select(func.max(Judgment.id))) or 0,
            policy_version_id=policies_service.get_active(db=session).id,
            counts={"pairs_train": 180, "pairs_eval": 20},
        )


def report(
    db: Database,
    round_id: int,
    *,
    stage: str,
    step: int,
    total: int,
    points: list[dict],
    completed: list[str],
    log: str = "",
    results: dict | None = None,
) -> None:
    """What the worker copies in from the trainer's status.json and metrics.jsonl."""
    with db.session() as session:
        training_service.record_progress(
            db=session,
            round_id=round_id,
            worker_id=WORKER,
            now=utcnow(),
            status={
                "stage": stage,
                "step": step,
                "total_steps": total,
                "completed_stages": completed,
                "latest_metrics": points[-1]["values"] if points else {},
                "results": results or {},
            },
            points=points,
            log_tail=log,
        )


def finish_round(db: Database, round_id: int, status: RoundStatus, *, error: str = "") -> None:
    with db.session() as session:
        training_service.finish(
            db=session, round_id=round_id, worker_id=WORKER, status=status, now=utcnow(), error=error
        )


def rm_points(steps: range) -> list[dict]:
    return [
        {
            "stage": "reward_model",
            "step": s,
            "values": {
                M.RM_TRAIN_LOSS: 0.69 * math.exp(-s / 18) + 0.25 + 0.03 * math.sin(s),
                M.RM_TRAIN_ACCURACY: 0.5 + 0.3 * (1 - math.exp(-s / 12)) + 0.03 * math.cos(s * 1.7),
            },
        }
        for s in steps
    ]


def ppo_points(steps: range) -> list[dict]:
    return [
        {
            "stage": "ppo",
            "step": s,
            "values": {
                M.OBJECTIVE_RLHF_REWARD: -0.4 + 1.2 * (1 - math.exp(-s / 10)) + 0.05 * math.sin(s * 1.3),
                M.OBJECTIVE_SCORES: -0.3 + 1.4 * (1 - math.exp(-s / 10)) + 0.05 * math.sin(s * 1.3),
                M.OBJECTIVE_KL: 0.02 * s + 0.05 * math.sin(s / 2) ** 2,
                M.OBJECTIVE_ENTROPY: 38 - 0.25 * s + math.cos(s),
                M.POLICY_CLIPFRAC_AVG: 0.04 + 0.03 * math.exp(-s / 8) + 0.01 * math.sin(s),
                M.VAL_CLIPFRAC_AVG: 0.12 * math.exp(-s / 12) + 0.02,
            },
        }
        for s in steps
    ]


def seed_console(db: Database, settings: Settings, admin_id: int, *, seed: int = 3) -> dict[str, int]:
    """A day of annotation by five people, three policy versions and a round halfway through PPO."""
    rng = random.Random(seed)
    with db.session() as session:
        v1 = make_policy_version(session, number=1, status=PolicyStatus.archived, source="embedded:default")
        v2 = make_policy_version(
            session,
            number=2,
            parent_id=v1,
            source="round",
            status=PolicyStatus.archived,
            metrics={"rm_heldout_accuracy": 0.64, "kl": 1.8, "eos_rate": 0.91},
        )
        v3 = make_policy_version(
            session,
            number=3,
            parent_id=v2,
            source="round",
            metrics={"rm_heldout_accuracy": 0.69, "kl": 2.6, "eos_rate": 0.94},
        )
        versions = (v1, v2, v3)
    names = ["maria", "kenji", "lena", "omar", "priya"]
    annotators = {name: make_user(db, name) for name in names}
    # each version judged against its parent: people prefer the newer one, more clearly for v3
    for (older, newer), wins in (((versions[0], versions[1]), 0.65), ((versions[1], versions[2]), 0.75)):
        for _ in range(40):
            roll = rng.random()
            choice = "a" if roll < wins else "tie" if roll < wins + 0.1 else "b"
            make_judged_pair(
                db,
                annotator_id=annotators[rng.choice(names)],
                choice=choice,
                prompt="Describe the otter.",
                version_a_id=newer,
                version_b_id=older,
                text_a="Otters hold hands.",
                text_b="Otters? No idea.",
            )
    comparisons = make_comparisons(db, 140, overlap_target=2)
    gold = make_comparisons(db, 8, is_gold=True, gold_choice=Choice.a, overlap_target=5)
    skill = {"maria": 0.85, "kenji": 0.8, "lena": 0.75, "omar": 0.45, "priya": 0.7}
    left_lean = {"maria": 0.5, "kenji": 0.5, "lena": 0.52, "omar": 0.78, "priya": 0.5}
    speed = {"maria": 9000, "kenji": 14000, "lena": 7000, "omar": 2500, "priya": 11000}
    now = utcnow()
    for comparison_id in comparisons + gold:
        truth = Choice.a if comparison_id in gold else rng.choice([Choice.a, Choice.b] * 2 + [Choice.tie])
        judges = rng.sample(names, 5 if comparison_id in gold else rng.choice([1, 2, 2, 3]))
        for name in judges:
            if rng.random() < skill[name]:
                choice = truth
            elif rng.random() < left_lean[name]:
                choice = None  # picks whatever is on the left
            else:
                choice = rng.choice(list(Choice))
            shown_left = rng.choice("ab")
            if choice is None:
                choice = Choice(shown_left)
            hours_ago = rng.triangular(0, 23.9, 2)
            make_judgment(
                db,
                comparison_id=comparison_id,
                annotator_id=annotators[name],
                choice=choice,
                shown_left=shown_left,
                time_spent_ms=int(rng.lognormvariate(math.log(speed[name]), 0.4)),
                created_at=now - timedelta(hours=hours_ago),
            )
    with db.session() as session:
        admin = session.get(User, admin_id)
        round_id = training_service.launch(db=session, settings=settings, requested_by=admin, config_overrides={}).id
    claim_round(db)
    record_snapshot(db, round_id)
    report(
        db,
        round_id,
        stage="reward_model",
        step=40,
        total=40,
        points=rm_points(range(1, 41)),
        completed=["snapshot", "reward_model"],
        results={
            "reward_model": {M.RM_EVAL_ACCURACY: 0.71, M.RM_EVAL_LOSS: 0.58},
            # as trainer/round.py gate_verdicts writes it once the reward model is trained
            "gates": {
                "rm_accuracy": {
                    "value": 0.71,
                    "limit": 0.6,
                    "op": ">=",
                    "what": "reward model held-out accuracy",
                    "setting": "gates.min_rm_accuracy",
                    "passed": True,
                    "reason": "",
                }
            },
        },
    )
    report(
        db,
        round_id,
        stage="ppo",
        step=26,
        total=60,
        points=ppo_points(range(1, 27)),
        completed=["snapshot", "reward_model"],
        log="ppo 26/60 objective/kl=0.52 objective/scores=1.02\n",
    )
    return {"round_id": round_id, **annotators}
