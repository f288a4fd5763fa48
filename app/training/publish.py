"""Publish a finished round: its reward model, then its policy, into the registry and the database.

Files first, rows second (app/policies/service.py explains why): a crash in between leaves at worst an
unlisted registry directory, never a listed version without files, and the active version changes
only in the same transaction that records the new one. The round's outputs are moved, not copied (the
registry is under the same DATA_DIR): publishing a large model is a rename, not minutes of copying.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import utcnow
from app.policies import registry
from app.policies import service as policy_service
from app.policies.models import PolicyStatus, PolicyVersion, RewardModel
from app.rollout import service as rollout_service
from app.training import activation
from app.training.models import TrainingRound
from trainer import metrics as M
from trainer.contract import MANIFEST_FILE, OUTPUTS_DIR, POLICY_OUTPUT, REWARD_MODEL_OUTPUT, SNAPSHOT_DIR, Stage

# Copied onto the policy version, so versions can be compared without opening their round.
POLICY_METRIC_KEYS = (M.OBJECTIVE_KL, M.OBJECTIVE_SCORES, M.OBJECTIVE_RLHF_REWARD, M.ROLLOUT_EOS_RATE)


def publish_round(
    *, db: Session, settings: Settings, round_: TrainingRound, workdir: Path, results: dict
) -> tuple[RewardModel, PolicyVersion]:
    """Publish and record both models. The policy becomes active, stays a candidate or enters a human-gated
    rollout by the activation rule (app/training/activation.py), whose verdict joins the round's results."""
    snapshot = json.loads((workdir / SNAPSHOT_DIR / MANIFEST_FILE).read_text(encoding="utf-8"))
    if round_.base_policy_version_id is None:
        raise RuntimeError(f"Round {round_.id} has no starting version: its snapshot was never recorded")
    parent = policy_service.get_or_raise(db=db, version_id=round_.base_policy_version_id)
    lineage = {
        "round_id": round_.id,
        "source": f"round {round_.id}",
        "data_snapshot": snapshot,
        "config": round_.config,
        "gates": results.get("gates", {}),
    }

    rm_metrics = results[Stage.reward_model]
    rm_number = policy_service.next_reward_number(db=db, registry_dir=settings.registry_dir)
    rm_path = registry.publish(
        registry_dir=settings.registry_dir,
        kind="reward",
        number=rm_number,
        move=True,
        source_dir=workdir / OUTPUTS_DIR / REWARD_MODEL_OUTPUT,
        manifest=lineage | {"base_policy_version": snapshot["base_policy_version"], "metrics": rm_metrics},
    )
    reward_model = policy_service.record_reward_model(
        db=db,
        number=rm_number,
        path=rm_path,
        metrics=rm_metrics,
        score_mean=rm_metrics[M.RM_NORM_MEAN],
        score_std=rm_metrics[M.RM_NORM_STD],
    )

    ppo_metrics = results[Stage.ppo]["metrics"]
    metrics = results[Stage.evaluate] | {k: ppo_metrics[k] for k in POLICY_METRIC_KEYS if k in ppo_metrics}
    metrics |= {"reward_model": rm_number, M.RM_EVAL_ACCURACY: rm_metrics.get(M.RM_EVAL_ACCURACY)}
    number = policy_service.next_policy_number(db=db, registry_dir=settings.registry_dir)
    path = registry.publish(
        registry_dir=settings.registry_dir,
        kind="policy",
        number=number,
        move=True,
        source_dir=workdir / OUTPUTS_DIR / POLICY_OUTPUT,
        manifest=lineage | {"parent_version": parent.number, "reward_model_version": rm_number, "metrics": metrics},
    )
    verdict = activation.decide(results=results, config=round_.config)
    status = PolicyStatus.active if verdict.decision == "activated" else PolicyStatus.candidate
    policy = policy_service.record_policy_version(
        db=db,
        number=number,
        path=path,
        parent_id=round_.base_policy_version_id,
        source=f"round {round_.id}",
        status=status,
        metrics=metrics,
    )
    if verdict.decision == "rollout":
        rollout, refused = rollout_service.start(
            db=db, settings=settings, candidate=policy, share=round_.config["rollout_share"], now=utcnow()
        )
        if rollout is None:
            verdict = verdict.model_copy(update={"decision": "candidate", "reason": f"Not activated. {refused}"})
    round_.results = round_.results | {"activation": verdict.model_dump()}
    return reward_model, policy
