"""Freeze a round's training data: judgments up to the current highest id become the snapshot directory.

Files (under DATA_DIR/rounds/<id>/snapshot/, read by `python -m trainer.round`; trainer/contract.py names
them and defines config.json's schema):

    pairs.jsonl    {"judgment_id", "prompt_id", "prompt": chat messages, "chosen", "rejected", "margin",
                    "split": "train" | "eval"}, one per usable judgment (two for a tie when ties are used)
    prompts.jsonl  {"prompt_id", "prompt": chat messages, "split"}: the active prompts (PPO rollouts use
                   the train split) plus any held-out prompt a pair uses (the evaluation samples the
                   eval split)
    config.json    SnapshotConfig: the resolved RoundConfig plus policy_dir (the version PPO starts from),
                   base_policy_dir (its lineage's root; the reward model starts there), ref_policy_dir, round_id
    manifest.json  {"max_judgment_id", "counts": {...}, "policy_version", "base_policy_version"}

Usable judgments: from active annotators not excluded from training, choosing a or b (ties and
both-bad only with data.include_ties). The split is a hash of the prompt's content, so a prompt stays
on the same side in every round and held-out accuracy is always measured on prompts never trained on.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from app.auth.models import User
from app.comparisons.models import Choice, Comparison, Completion
from app.judgments.models import Judgment
from app.policies import registry
from app.policies import service as policy_service
from app.policies.models import PolicyVersion
from app.prompts.models import Prompt
from app.training.schemas import RoundConfig
from trainer.contract import (
    CONFIG_FILE,
    EVAL_SPLIT,
    MANIFEST_FILE,
    PAIRS_FILE,
    PROMPTS_FILE,
    TRAIN_SPLIT,
    SnapshotConfig,
)

STRICT_CHOICES = (Choice.a, Choice.b)
TIE_CHOICES = (Choice.tie, Choice.both_bad)
# Annotator strength (1 slightly, 2 clearly, 3 much better) as a Bradley-Terry margin, on the scale of
# Llama 2's margin loss; only used when reward.use_margin is on.
STRENGTH_MARGIN = {None: 0.0, 1: 1 / 3, 2: 2 / 3, 3: 1.0}


class SnapshotError(Exception):
    """The data cannot make a round (no usable judgments, no held-out set, no policy): the round's error.

    max_judgment_id is the bound the data was read at, so the schedule waits for newer judgments."""

    max_judgment_id: int | None = None


@dataclass(frozen=True)
class Shortfall:
    """A check a snapshot fails: what is counted, how many there are, how many are needed, and the message."""

    what: str
    there: int
    needed: int
    message: str
    more_judgments: int | None = None  # about how many more usable judgments would make up for it


@dataclass
class Snapshot:
    max_judgment_id: int
    policy_version_id: int
    counts: dict


def usable_conditions(include_ties: bool) -> list:
    """WHERE clauses (on Judgment joined with its annotator User) selecting trainable judgments."""
    choices = STRICT_CHOICES + TIE_CHOICES if include_ties else STRICT_CHOICES
    return [*_trusted_annotator(), Judgment.choice.in_(choices)]


def count_usable_judgments(*, db: Session, after_id: int = 0, include_ties: bool = False) -> int:
    """Judgments a round would train on (see usable_conditions) with an id above `after_id`."""
    return (
        db.scalar(
            select(func.count())
            .select_from(Judgment)
            .join(User, Judgment.annotator_id == User.id)
            .where(Judgment.id > after_id, *usable_conditions(include_ties))
        )
        or 0
    )


def _trusted_annotator() -> list:
    return [User.is_active.is_(True), User.excluded_from_training.is_(False)]


def split_of(content_hash: str, heldout_fraction: float) -> str:
    """'eval' for a stable heldout_fraction of prompts, by a salted hash of the prompt's content.

    Raising the fraction later only moves prompts from train to eval, never the other way.
    """
    digest = hashlib.sha256(f"prefloop-heldout:{content_hash}".encode()).hexdigest()
    return EVAL_SPLIT if int(digest[:15], 16) / 16**15 < heldout_fraction else TRAIN_SPLIT


def write_snapshot(*, db: Session, round_id: int, config: RoundConfig, out_dir: Path) -> Snapshot:
    """Write the snapshot directory atomically (a temporary sibling renamed into place); raise
    SnapshotError with a reason an admin can act on when the data cannot make a round."""
    max_id = db.scalar(select(func.max(Judgment.id))) or 0
    try:
        policy, base = _policies(db)
        pairs, prompts, counts = _collect(db, max_id=max_id, config=config)
        if shortfalls := find_shortfalls(counts, config):
            raise SnapshotError(shortfalls[0].message)
    except SnapshotError as exc:
        exc.max_judgment_id = max_id
        raise

    ref = base if config.reference == "base" else policy
    files = {
        PAIRS_FILE: "".join(json.dumps(p) + "\n" for p in pairs),
        PROMPTS_FILE: "".join(json.dumps(p) + "\n" for p in prompts),
        CONFIG_FILE: SnapshotConfig.model_validate(
            config.model_dump()
            | {"round_id": round_id, "policy_dir": policy.path, "base_policy_dir": base.path}
            | {"ref_policy_dir": ref.path}
        ).model_dump_json(indent=2, exclude_unset=True),
        MANIFEST_FILE: json.dumps(
            {
                "max_judgment_id": max_id,
                "counts": counts,
                "policy_version": policy.number,
                "base_policy_version": base.number,
            },
            indent=2,
        ),
    }
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, text in files.items():
        (tmp / name).write_text(text, encoding="utf-8")
    tmp.rename(out_dir)
    return Snapshot(max_judgment_id=max_id, policy_version_id=policy.id, counts=counts)


def survey(*, db: Session, config: RoundConfig) -> tuple[dict, list[Shortfall]]:
    """What a snapshot taken now would count, and every check it would fail, without writing anything."""
    shortfalls = []
    try:
        _policies(db)
    except SnapshotError as exc:
        shortfalls.append(Shortfall("policy", 0, 1, str(exc)))
    max_id = db.scalar(select(func.max(Judgment.id))) or 0
    counts = _count_judgments(db, max_id=max_id) | _count_pairs_and_prompts(db, max_id=max_id, config=config)
    return counts, shortfalls + find_shortfalls(counts, config)


def _collect(db: Session, *, max_id: int, config: RoundConfig) -> tuple[list[dict], list[dict], dict]:
    """(pairs, prompts, counts) of the judgments up to `max_id` under `config`."""
    pairs, counts = _pairs(db, max_id=max_id, config=config)
    held_out_prompt_ids = {p["prompt_id"] for p in pairs if p["split"] == EVAL_SPLIT}
    prompts = _prompts(db, config=config, eval_prompt_ids=held_out_prompt_ids)
    counts |= {
        "ppo_prompts": sum(p["split"] == TRAIN_SPLIT for p in prompts),
        "eval_prompts": sum(p["split"] == EVAL_SPLIT for p in prompts),
    }
    return pairs, prompts, counts


def _policies(db: Session) -> tuple[PolicyVersion, PolicyVersion]:
    """(the active version, the root of its lineage), both with a complete directory on disk."""
    policy = policy_service.get_active(db=db)
    if policy is None:
        raise SnapshotError("There is no active policy version to train; register or activate one first.")
    base, seen = policy, {policy.id}
    while base.parent_id is not None and base.parent_id not in seen:
        seen.add(base.parent_id)
        base = db.get_one(PolicyVersion, base.parent_id)
    for version in {policy.id: policy, base.id: base}.values():
        try:
            registry.validate_model_dir(Path(version.path))
        except registry.InvalidModelDir as exc:
            raise SnapshotError(f"Policy version {version.number} cannot be trained from: {exc.msg}") from exc
    return policy, base


def _pairs(db: Session, *, max_id: int, config: RoundConfig) -> tuple[list[dict], dict]:
    completion_a, completion_b = aliased(Completion), aliased(Completion)
    rows = db.execute(
        select(
            Judgment.id,
            Judgment.choice,
            Judgment.strength,
            Prompt.id,
            Prompt.messages,
            Prompt.content_hash,
            completion_a.text,
            completion_b.text,
        )
        .join(Comparison, Judgment.comparison_id == Comparison.id)
        .join(Prompt, Comparison.prompt_id == Prompt.id)
        .join(completion_a, Comparison.completion_a_id == completion_a.id)
        .join(completion_b, Comparison.completion_b_id == completion_b.id)
        .join(User, Judgment.annotator_id == User.id)
        .where(Judgment.id <= max_id, *usable_conditions(config.data.include_ties))
        .order_by(Judgment.id)
    )
    pairs = []
    for judgment_id, choice, strength, prompt_id, messages, content_hash, text_a, text_b in rows:
        split = split_of(content_hash, config.data.heldout_fraction)
        common = {"judgment_id": judgment_id, "prompt_id": prompt_id, "prompt": messages, "split": split}
        if choice in STRICT_CHOICES:
            chosen, rejected = (text_a, text_b) if choice == Choice.a else (text_b, text_a)
            pairs.append(
                common | {"chosen": chosen, "rejected": rejected, "margin": STRENGTH_MARGIN.get(strength, 0.0)}
            )
        elif split == TRAIN_SPLIT:
            # A tie trains as both orders, whose losses together pull the two scores together. Held-out
            # ties are left out: accuracy (chosen scored higher) means nothing for them.
            pairs.append(common | {"chosen": text_a, "rejected": text_b, "margin": 0.0})
            pairs.append(common | {"chosen": text_b, "rejected": text_a, "margin": 0.0})
    return pairs, _counts(db, max_id=max_id, pairs=pairs)


def _counts(db: Session, *, max_id: int, pairs: list[dict]) -> dict:
    return _count_judgments(db, max_id=max_id) | {
        "train_pairs": sum(p["split"] == TRAIN_SPLIT for p in pairs),
        "eval_pairs": sum(p["split"] == EVAL_SPLIT for p in pairs),
    }


def _count_judgments(db: Session, *, max_id: int) -> dict:
    by_choice = dict(
        db.execute(
            select(Judgment.choice, func.count())
            .join(User, Judgment.annotator_id == User.id)
            .where(Judgment.id <= max_id, *_trusted_annotator())
            .group_by(Judgment.choice)
        ).all()
    )
    return {
        "judgments": db.scalar(select(func.count()).select_from(Judgment).where(Judgment.id <= max_id)) or 0,
        "from_usable_annotators": sum(by_choice.values()),
        "strict": sum(by_choice.get(c, 0) for c in STRICT_CHOICES),
        "ties": sum(by_choice.get(c, 0) for c in TIE_CHOICES),
    }


def _count_pairs_and_prompts(db: Session, *, max_id: int, config: RoundConfig) -> dict:
    """The pair and prompt counts _collect would give, from grouped counts: one row per judged prompt and
    choice, not per judgment (a plan runs on every dashboard view). The split is a hash of the prompt's
    content, so it is the prompt's; the rules are _pairs' (a tie: two training pairs, none held out) and
    _prompts' (the active prompts, plus the inactive ones a held-out pair uses)."""
    fraction = config.data.heldout_fraction
    per_prompt = (
        select(Comparison.prompt_id, Judgment.choice, func.count().label("n"))
        .join(Comparison, Judgment.comparison_id == Comparison.id)
        .join(User, Judgment.annotator_id == User.id)
        .where(Judgment.id <= max_id, *usable_conditions(config.data.include_ties))
        .group_by(Comparison.prompt_id, Judgment.choice)
        .subquery()
    )
    rows = db.execute(
        select(Prompt.content_hash, Prompt.is_active, per_prompt.c.choice, per_prompt.c.n).join(
            per_prompt, Prompt.id == per_prompt.c.prompt_id
        )
    )
    train_pairs = eval_pairs = 0
    inactive_eval_prompts: set[str] = set()  # by content hash, unique per prompt
    for content_hash, is_active, choice, n in rows:
        split = split_of(content_hash, fraction)
        if choice in STRICT_CHOICES and split == EVAL_SPLIT:
            eval_pairs += n
            if not is_active:
                inactive_eval_prompts.add(content_hash)
        elif choice in STRICT_CHOICES:
            train_pairs += n
        elif split == TRAIN_SPLIT:
            train_pairs += 2 * n
    active_splits = [
        split_of(content_hash, fraction)
        for content_hash in db.scalars(select(Prompt.content_hash).where(Prompt.is_active.is_(True)))
    ]
    return {
        "train_pairs": train_pairs,
        "eval_pairs": eval_pairs,
        "ppo_prompts": active_splits.count(TRAIN_SPLIT),
        "eval_prompts": active_splits.count(EVAL_SPLIT) + len(inactive_eval_prompts),
    }


def _prompts(db: Session, *, config: RoundConfig, eval_prompt_ids: set[int]) -> list[dict]:
    rows = db.execute(
        select(Prompt.id, Prompt.messages, Prompt.content_hash)
        .where(Prompt.is_active.is_(True) | Prompt.id.in_(eval_prompt_ids))
        .order_by(Prompt.id)
    )
    return [
        {
            "prompt_id": prompt_id,
            "prompt": messages,
            "split": split_of(content_hash, config.data.heldout_fraction),
        }
        for prompt_id, messages, content_hash in rows
    ]


def find_shortfalls(counts: dict, config: RoundConfig) -> list[Shortfall]:
    """Every bad-data case the counts show, each with what is there, what is needed and what to do."""
    found = []
    if counts["judgments"] == 0:
        found.append(Shortfall("judgments", 0, 1, "No judgments yet: annotate some pairs before training."))
    elif counts["from_usable_annotators"] == 0:
        found.append(
            Shortfall(
                "usable judgments",
                0,
                1,
                f"All {counts['judgments']} judgments come from deactivated annotators or annotators "
                "excluded from training.",
            )
        )
    elif counts["strict"] == 0:
        found.append(
            Shortfall(
                "judgments preferring one answer",
                0,
                1,
                f"All {counts['ties']} usable judgments are ties or both-bad, which say nothing about "
                "which answer is better; collect judgments that prefer one answer.",
            )
        )
    needed = config.data.min_heldout_pairs
    if counts["eval_pairs"] < needed:
        # Held-out pairs per usable judgment so far (the configured share before any are in).
        rate = counts["eval_pairs"] / counts["strict"] if counts["eval_pairs"] else config.data.heldout_fraction
        more = math.ceil((needed - counts["eval_pairs"]) / rate)
        found.append(
            Shortfall(
                "held-out pairs",
                counts["eval_pairs"],
                needed,
                f"Too few judgments for a held-out set: {counts['eval_pairs']} held-out pairs, at least "
                f"{needed} needed (data.min_heldout_pairs), about {more} more usable judgments. "
                f"{config.data.heldout_fraction:.0%} of prompts are held out; collect judgments on more prompts.",
                more,
            )
        )
    if counts["train_pairs"] == 0 and counts["eval_pairs"] > 0:
        found.append(
            Shortfall(
                "training pairs",
                0,
                1,
                "No training pairs: every usable judgment is on a held-out prompt; collect judgments on more prompts.",
            )
        )
    if counts["ppo_prompts"] == 0:
        found.append(
            Shortfall(
                "PPO prompts",
                0,
                1,
                "No active prompts in the training split for PPO to sample; import or activate prompts.",
            )
        )
    return found
