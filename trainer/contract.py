"""The round contract: where a round's arguments are defined, and every file the app and the trainer exchange.

The web app writes a round's snapshot and reads its progress; the trainer (`python -m trainer.round`, or
one stage alone: `python -m trainer.reward`, `python -m trainer.ppo`) reads the snapshot and writes the
progress. They share nothing else, so everything both sides must agree on is here, once: the stage
arguments with their defaults, limits and help (the console's form, the API's JSON Schema and the stage
command lines are all built from these fields), the PPO batch-size arithmetic, the stage names, the file
names and the status file's schema. Standard library and pydantic only: the app imports this module
without torch.

A round's work directory, DATA_DIR/rounds/<id>/:

    snapshot/pairs.jsonl     written by the app (app/training/snapshot.py): {"judgment_id", "prompt_id",
                             "prompt": chat messages, "chosen", "rejected", "margin", "split"}
    snapshot/prompts.jsonl   ... {"prompt_id", "prompt", "split"}: PPO samples the train split, the
                             held-out evaluation the eval split
    snapshot/config.json     ... SnapshotConfig: the resolved RoundConfig plus the model directories
    snapshot/manifest.json   ... the snapshot bound (highest judgment id) and counts
    status.json              written by the trainer, replaced atomically: TrainerStatus
    metrics.jsonl            written by the trainer: {"stage", "step", "values"} per logged point
    trainer.log              the trainer's stdout and stderr (the executor opens it)
    outputs/reward_model/    written by the trainer: the models the worker publishes when it succeeds
    outputs/policy/
    work/                    written by the trainer: PPO checkpoints and stage markers (for resume)
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

# ---- stages ------------------------------------------------------------------------------------------------


class Stage(StrEnum):
    """A round's stages, in the order they run."""

    snapshot = "snapshot"  # the app's worker freezes the judgments into snapshot/
    reward_model = "reward_model"  # the trainer, from here on (status.json reports these three)
    ppo = "ppo"
    evaluate = "evaluate"
    publish = "publish"  # the app's worker moves the outputs into the registry


STAGE_ORDER = tuple(Stage)
TRAINER_STAGES = (Stage.reward_model, Stage.ppo, Stage.evaluate)
APP_STAGES = {Stage.snapshot, Stage.publish}

# ---- files and directories ---------------------------------------------------------------------------------

SNAPSHOT_DIR = "snapshot"
PAIRS_FILE = "pairs.jsonl"
PROMPTS_FILE = "prompts.jsonl"
CONFIG_FILE = "config.json"  # also the file that marks a model directory as complete (transformers writes it)
MANIFEST_FILE = "manifest.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"  # a round's points for the live charts; also each stage's own metric log
LOG_FILE = "trainer.log"
OUTPUTS_DIR = "outputs"
WORK_DIR = "work"
# The directory under outputs/ each trainer stage leaves (moved into the registry when the round publishes).
REWARD_MODEL_OUTPUT, POLICY_OUTPUT = "reward_model", "policy"
STAGE_OUTPUT = {Stage.reward_model: REWARD_MODEL_OUTPUT, Stage.ppo: POLICY_OUTPUT, Stage.evaluate: None}
TRAIN_SPLIT, EVAL_SPLIT = "train", "eval"


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON Lines file (pairs.jsonl, prompts.jsonl); blank lines are skipped."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def snapshot_file(path: Path, name: str) -> Path:
    """`path` itself (a pairs or prompts file), or the file `name` in it when it is a snapshot directory."""
    return path / name if path.is_dir() else path


def snapshot_rows(path: Path, name: str) -> tuple[list[dict], list[dict]]:
    """(train rows, eval rows) of `path`, a pairs or prompts file, or the snapshot directory holding `name`.
    A row without a split trains."""
    rows = read_jsonl(snapshot_file(path, name))
    train = [row for row in rows if row.get("split", TRAIN_SPLIT) == TRAIN_SPLIT]
    return train, [row for row in rows if row.get("split") == EVAL_SPLIT]


def json_safe(value: Any) -> Any:
    """Plain JSON: tensors and numpy scalars as Python numbers, NaN and infinities as the strings "nan" and
    "inf" (JSON has no such numbers, and PostgreSQL's JSON type refuses the bare NaN Python writes)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def describe_validation_error(exc: ValidationError) -> str:
    """ "section.field: what is wrong", one per error, for the admin, the log or the command line."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())


# ---- devices and precision ---------------------------------------------------------------------------------

DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
DEVICE_HELP = "torch device: auto (cuda when the machine has a GPU), cpu, cuda or cuda:N."
Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
PRECISION_HELP = (
    "Forward passes: auto (bf16 mixed precision on CUDA, fp32 on CPU), bf16 (also on CPU: faster on CPUs "
    "with native bf16, much slower elsewhere) or fp32. Weights and optimizer state stay fp32."
)


class _Strict(BaseModel):
    # An unknown key is a typo the admin should hear about, not a setting silently ignored.
    model_config = ConfigDict(extra="forbid")


# ---- stage arguments ---------------------------------------------------------------------------------------


class RewardArgs(_Strict):
    """Reward-model training (trainer/reward.py): Bradley-Terry on pairs, from the base policy."""

    # 1 as in Ziegler et al. 2019 and Huang et al. 2024 (arXiv:2403.17031), to avoid overfitting scarce labels.
    num_epochs: int = Field(1, ge=1, le=100, description="Passes over the training pairs.")
    # Huang et al.'s 3e-6 and TRL's 1e-4 target large pretrained LMs; small models need more. Measured (1 epoch,
    # bs 16, 1000 scripted-annotator pairs on samples of a 4-layer/256-dim embedded policy): held-out accuracy
    # 0.77 / 0.79 / 0.84 / 0.84 at 3e-5 / 1e-4 / 3e-4 / 1e-3, lowest held-out loss at 3e-4. On a random
    # 2-layer/32-dim GPT-2, 1e-5 stays at chance, 3e-4 gets ~0.9.
    learning_rate: float = Field(3e-4, gt=0, le=1, description="Peak AdamW learning rate, decayed linearly to 0.")
    batch_size: int = Field(
        16, ge=1, le=4096, description="Pairs per optimizer step (2 x batch_size sequences in one forward)."
    )
    max_length: int = Field(
        256,
        ge=8,
        le=65536,
        description="Longest prompt + response + EOS in tokens (capped at the model's positions); longer pairs "
        "are dropped and counted in rm/data/num_dropped_too_long.",
    )
    use_margin: bool = Field(
        False, description="Subtract each pair's margin (the annotators' strength) inside the loss, as Llama 2."
    )
    center_rewards_coefficient: float | None = Field(
        0.01,
        ge=0,
        description="Weight of mean((r_chosen + r_rejected)^2), keeping rewards near 0 (Eisenstein et al. 2023); "
        "None: off.",
    )
    # Early stopping on a validation slice of the TRAINING prompts, not on the held-out split: the held-out
    # accuracy decides the round's gate, and a checkpoint picked on it would pass that gate by selection.
    validation_fraction: float = Field(
        0.1,
        ge=0,
        lt=0.5,
        description="Share of the training pairs (whole prompts) held back to pick the checkpoint with the lowest "
        "validation loss; 0: no early stopping, the last step is kept.",
    )
    # On a first round's ~160 pairs a 10 % slice (~16 pairs) picked worse checkpoints than the fixed 2 epochs
    # (noise-free accuracy 0.729-0.739 against 0.804, bench/bench_reward_defaults.py): the loss of so few
    # pairs is mostly noise, and the slice is data the model does not learn from.
    min_validation_pairs: int = Field(
        100,
        ge=1,
        description="Fewer validation pairs than this: no early stopping, they train with the rest (the loss "
        "of fewer pairs is too noisy to pick a checkpoint by).",
    )
    evals_per_epoch: int = Field(4, ge=1, le=100, description="Validation-loss checks per pass over the pairs.")
    patience: int = Field(3, ge=1, description="Checks in a row without a lower validation loss before training stops.")
    adam_eps: float = Field(1e-5, gt=0, description="AdamW epsilon (1e-5 as Huang et al.; PyTorch's is 1e-8).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping threshold.")
    group_by_length: bool = Field(
        True,
        description="Batch pairs of similar length (shuffled mega-batches of 50 batches, sorted inside, as "
        "transformers' LengthGroupedSampler), so padding wastes almost nothing.",
    )
    eval_batch_size: int = Field(64, ge=1, description="Pairs per forward in evaluation and normalisation.")
    max_norm_samples: int = Field(
        1024, ge=2, description="Pair responses scored for the reward mean/std that PPO normalises by."
    )
    log_every: int = Field(10, ge=1, description="Optimizer steps between logged metric points.")
    seed: int = Field(0, ge=0, description="Seeds the score head's initialisation and the batch order.")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads; None: every core this process may use.")
    device: str = Field("auto", pattern=DEVICE_PATTERN, description=DEVICE_HELP)
    precision: Precision = Field("auto", description=PRECISION_HELP)


class PPOArgs(_Strict):
    """PPO (trainer/ppo.py). Numbered "N details" in comments are those of Huang et al. 2024, "The N+
    Implementation Details of RLHF with PPO" (arXiv:2403.17031)."""

    # ---- episodes and batch sizes
    total_episodes: int | None = Field(
        None,
        ge=1,
        description="Episodes (prompt -> sampled response) in the whole run, a multiple of batch_size; "
        "None: num_prompt_epochs passes over the prompts, rounded up to whole batches.",
    )
    num_prompt_epochs: float = Field(1.0, gt=0, le=1000, description="Passes over the training prompts.")
    batch_size: int = Field(16, ge=1, le=65536, description="Episodes per PPO update (the rollout batch).")
    num_mini_batches: int = Field(1, ge=1, description="Optimizer steps per PPO epoch; must divide batch_size.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro-batches per minibatch (memory only); must divide batch_size / num_mini_batches."
    )
    num_ppo_epochs: int = Field(
        4, ge=1, le=100, description="Passes over each rollout batch, each in a fresh order (N detail #14)."
    )
    # ---- optimisation
    # TRL and Huang et al. use 3e-6 for 1B+ pretrained policies. Measured on the embedded 4-layer/256-dim policy
    # (24 updates x 16 episodes, RM from 1000 scripted pairs; scripted-judge quality 0.27 before): 3e-6 barely
    # moves it (KL 0.01 nats, quality 0.26); 1e-5: KL 0.2, quality 0.31; 3e-5: KL 2.4, quality 0.39, RM score
    # +1.3 std, with clipfrac <= 0.02 and ratio ~1 throughout (48 updates at 3e-5: KL 7.1, quality 0.52).
    learning_rate: float = Field(
        3e-5,
        gt=0,
        le=1,
        description="Peak AdamW learning rate, decayed linearly to 0 (N detail #5); lower it, or use adaptive_kl, "
        "for long rounds or bigger policies.",
    )
    # PyTorch's 1e-8 made approxkl ~6x larger early on.
    adam_eps: float = Field(1e-5, gt=0, description="AdamW epsilon (1e-5 as Huang et al.; N detail #19).")
    max_grad_norm: float = Field(1.0, gt=0, description="Global gradient-norm clip over policy + value parameters.")
    # ---- reward and KL penalty
    kl_coef: float = Field(
        0.05, ge=0, description="Per-token KL penalty coefficient; the start value with adaptive_kl."
    )
    kl_estimator: Literal["k1", "k3"] = Field(
        "k1", description="k1 (log p - log q, TRL's default) or k3 (non-negative, lower variance)."
    )
    adaptive_kl: bool = Field(
        False, description="Ziegler et al.'s proportional controller keeps per-answer KL near kl_target."
    )
    kl_target: float = Field(6.0, gt=0, description="Adaptive KL target, nats per answer (lm-human-preferences).")
    kl_horizon: int = Field(10000, ge=1, description="Adaptive KL horizon in episodes (lm-human-preferences).")
    missing_eos_penalty: float | None = Field(
        1.0,
        ge=0,
        description="Subtracted from the normalised score of answers that never end (TRL; N detail #12); None: off.",
    )
    whiten_rewards: bool = Field(
        False, description="Whiten per-token rewards over the batch, without shifting the mean (TRL off, N+ on)."
    )
    # ---- GAE and PPO losses
    gamma: float = Field(
        1.0, gt=0, le=1, description="Discount; 1 because the score only arrives at the end of the answer (N #13)."
    )
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda.")
    cliprange: float = Field(0.2, gt=0, description="PPO probability-ratio clip.")
    cliprange_value: float = Field(0.2, gt=0, description="Value clip around the rollout values (N detail #17).")
    vf_coef: float = Field(0.1, ge=0, description="Value-loss weight in the shared loss.")
    ent_coef: float = Field(
        0.0, ge=0, description="Entropy bonus weight; 0 as TRL (the KL penalty already keeps the policy spread)."
    )
    # ---- generation
    response_length: int = Field(64, ge=1, le=32768, description="Max new tokens per answer.")
    max_prompt_length: int = Field(
        256, ge=1, description="Longer prompts keep their last tokens (the end holds the assistant header)."
    )
    temperature: float = Field(
        0.7, gt=0, le=10, description="Sampling temperature; it divides policy and reference logits (N detail #9)."
    )
    # ---- run bookkeeping
    checkpoint_every: int = Field(10, ge=0, description="Updates between resumable checkpoints (0: only when stopped).")
    seed: int = Field(0, ge=0, description="Seeds the prompt order, sampling and minibatch permutations.")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads; None: every core this process may use.")
    device: str = Field(
        "auto", pattern=DEVICE_PATTERN, description=DEVICE_HELP + " A round's held-out evaluation runs there too."
    )
    precision: Precision = Field("auto", description=PRECISION_HELP + " A round's held-out evaluation uses it too.")


@dataclass(frozen=True)
class PPOSizes:
    """PPO's batch arithmetic for one run, derived once from PPOArgs and the number of prompts."""

    total_episodes: int
    num_updates: int
    mini_batch_size: int
    micro_batch_size: int


def batch_size_problem(args: PPOArgs) -> tuple[str, str] | None:
    """(field, message) when the batch sizes do not tile exactly (as Huang et al.'s `exact_div` requires)."""
    if args.batch_size % args.num_mini_batches:
        return "num_mini_batches", (
            f"num_mini_batches ({args.num_mini_batches}) must divide batch_size ({args.batch_size})."
        )
    mini_batch = args.batch_size // args.num_mini_batches
    if mini_batch % args.gradient_accumulation_steps:
        return "gradient_accumulation_steps", (
            f"gradient_accumulation_steps ({args.gradient_accumulation_steps}) must divide the minibatch "
            f"size batch_size / num_mini_batches ({mini_batch})."
        )
    if args.total_episodes is not None and args.total_episodes % args.batch_size:
        return "total_episodes", (
            f"total_episodes ({args.total_episodes}) must be a multiple of batch_size ({args.batch_size})."
        )
    if args.whiten_rewards and args.batch_size < 8:  # TRL asserts the same
        return "whiten_rewards", "whiten_rewards needs batch_size >= 8 for a meaningful variance."
    return None


def derive_sizes(args: PPOArgs, num_prompts: int) -> PPOSizes:
    """The run's sizes; ValueError (the batch_size_problem message) when they do not tile."""
    if num_prompts < 1:
        raise ValueError("PPO needs at least one prompt")
    if problem := batch_size_problem(args):
        raise ValueError(problem[1])
    if args.total_episodes is None:
        num_updates = max(1, math.ceil(int(args.num_prompt_epochs * num_prompts) / args.batch_size))
    else:
        num_updates = args.total_episodes // args.batch_size
    mini_batch_size = args.batch_size // args.num_mini_batches
    return PPOSizes(
        total_episodes=num_updates * args.batch_size,
        num_updates=num_updates,
        mini_batch_size=mini_batch_size,
        micro_batch_size=mini_batch_size // args.gradient_accumulation_steps,
    )


# ---- a round's configuration (snapshot/config.json) -------------------------------------------------------


class DataConfig(_Strict):
    """How the app turns judgments into the snapshot's pairs (app/training/snapshot.py)."""

    include_ties: bool = Field(description="Train on ties and both-bad judgments as pairs in both orders.")
    heldout_fraction: float = Field(gt=0, lt=1, description="Share of prompts whose pairs are held out.")
    min_heldout_pairs: int = Field(ge=1, description="Fewer held-out pairs than this fails the round.")


# What counts as a refusal or an evasion in a held-out answer (trainer/side_effects.py): regular expressions,
# matched case-insensitively anywhere in the answer (curly apostrophes read as straight ones). Generic
# phrasings, not one task's: they also catch every evasion the embedded task writes (trainer/embedded/task.py
# EVASIONS_ON, EVASIONS_OFF, EVASION_FOLLOWUPS), and no answer that gives facts (tests/trainer/test_side_effects.py).
DEFAULT_EVASION_PATTERNS = (
    r"\bI (?:really )?(?:don't|do not) (?:really )?know\b",
    r"\bI(?:'m| am) not (?:sure|able|allowed|going to)\b",
    r"\bI(?:'m| am) unable to\b",
    r"\bI (?:can't|cannot|won't|will not) (?:really )?(?:help|answer|say|tell|assist|comment|go into|discuss)",
    r"\bnot something I can\b",
    r"\bI(?:'d| would) rather not\b",
    r"\b(?:ask|consult|contact|see) (?:someone|somebody|a professional|an expert|a specialist)\b",
    r"\b(?:try|ask) (?:a different|another) question\b",
    r"\bas an AI\b",
    r"\b(?:sorry|unfortunately|apologies),? (?:but )?I\b",
)


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise PydanticCustomError(
            "invalid_pattern", "{pattern} is not a valid regular expression: {problem}",
            {"pattern": repr(pattern), "problem": str(exc)},
        ) from exc  # fmt: skip
    return pattern


EvasionPattern = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_compiles)]


class EvaluateConfig(_Strict):
    """The held-out comparison of the old and the new policy (trainer/evaluate.py)."""

    max_prompts: int = Field(64, ge=1, le=10000, description="Held-out prompts sampled to compare old and new policy.")
    samples_per_prompt: int = Field(2, ge=1, le=64, description="Answers sampled per prompt and policy.")
    batch_size: int = Field(64, ge=1, le=4096, description="Sequences generated per batch.")
    seed: int = Field(0, ge=0, description="Seeds the prompt choice and the sampling.")
    confidence: float = Field(
        0.95,
        ge=0.5,
        lt=1,
        description="Level of the score gain's interval (a paired bootstrap over held-out prompts); a new "
        "policy is activated automatically only when the interval's lower end is above 0.",
    )
    evasion_patterns: list[EvasionPattern] = Field(
        list(DEFAULT_EVASION_PATTERNS),
        max_length=200,
        description="Regular expressions (case-insensitive, one per line) marking a held-out answer as a refusal "
        "or evasion; the share of such answers is a side effect shown for the new policy and its parent.",
    )


# The held-out evaluation's score gain (new policy minus the one it started from) and its interval: the
# trainer writes them (trainer/evaluate.py), the app's activation rule reads them.
SCORE_GAIN, SCORE_GAIN_LOW, SCORE_GAIN_HIGH = "eval/score_gain", "eval/score_gain_low", "eval/score_gain_high"

# A round's side effects on held-out answers, each measured for the new policy (under this name) and for its
# parent (the name + OLD_SUFFIX), on the same prompts: the trainer writes them (trainer/evaluate.py), the
# gates, the round page, the API and the round.finished webhook read them.
RESPONSE_LENGTH = "eval/response_length"  # mean answer length in tokens, EOS included
EOS_RATE = "eval/eos_rate"  # share of answers that end with EOS within the length limit
DISTINCT_1 = "eval/distinct_1"  # distinct words / words, over all of a side's answers (trainer/side_effects.py)
DISTINCT_2 = "eval/distinct_2"  # the same for word bigrams
EVASION_RATE = "eval/evasion_rate"  # share of answers evaluate.evasion_patterns marks as refusals or evasions
SIDE_EFFECTS = (RESPONSE_LENGTH, EOS_RATE, DISTINCT_1, DISTINCT_2, EVASION_RATE)
OLD_SUFFIX = "_old"


class GateConfig(_Strict):
    """What a round must reach to be published; checked by the trainer (trainer/round.py gate_verdicts)."""

    min_rm_accuracy: float = Field(ge=0, le=1, description="Reward model accuracy on held-out pairs.")
    max_kl: float = Field(gt=0, description="Mean per-answer KL (nats) to the reference on held-out prompts.")
    min_eos_rate: float = Field(ge=0, le=1, description="Share of held-out answers the new policy ends itself.")
    min_score_gain: float | None = Field(
        None, description="Mean held-out reward-model score of the new policy minus the old one's; None: off."
    )
    max_evasion_increase: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Rise of the share of held-out answers marked as evasions, new policy minus parent; None: "
        "off. 0.05 refuses a rise of more than 5 points (evasions: answers evaluate.evasion_patterns matches).",
    )
    max_length_change: float | None = Field(
        None,
        ge=0,
        description="Relative change of the mean held-out answer length against the parent, either way; None: "
        "off. 0.3 refuses answers more than 30 % shorter or longer.",
    )
    min_distinct_2_ratio: float | None = Field(
        None,
        ge=0,
        description="Held-out distinct-2 (distinct word pairs / pairs) of the new policy over its parent's; None: "
        "off. 0.8 refuses losing more than a fifth of it.",
    )


class RoundConfig(_Strict):
    """A round's configuration. The trainer's sections default to the stage arguments' defaults; the app
    replaces the size-dependent ones (learning rates, reward-model batch and epochs, PPO passes, held-out
    share, accuracy gate) by trainer/defaults.py's rule when it resolves a round."""

    reference: Literal["base", "previous"] = Field(
        description="PPO's frozen reference: the lineage's base policy, or the version the round starts from."
    )
    activate: bool = Field(
        description="Activate the new policy automatically when it beats its parent on the held-out evaluation "
        "with confidence (the score gain's interval above 0); otherwise, or when false, it stays a candidate."
    )
    rollout_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Human-gated rollout: share of new annotation pairs that pit the new policy against its "
        "parent; people's ratings then activate or reject it. 0: off (the held-out rule decides).",
    )
    data: DataConfig
    reward: RewardArgs = RewardArgs()
    ppo: PPOArgs = PPOArgs()
    evaluate: EvaluateConfig = EvaluateConfig()
    gates: GateConfig


class SnapshotConfig(RoundConfig):
    """snapshot/config.json: the round's configuration and the model directories it trains from."""

    round_id: int
    policy_dir: str = Field(description="The policy version PPO starts from.")
    base_policy_dir: str = Field(description="The root of its lineage; the reward model starts there.")
    ref_policy_dir: str = Field(description="PPO's frozen reference (base or policy_dir, by `reference`).")


# ---- status.json ---------------------------------------------------------------------------------------------

TrainerState = Literal["running", "succeeded", "rejected", "failed", "interrupted"]


class TrainerStatus(BaseModel):
    """status.json: written whole (write + rename) by the trainer at every logged step, read by the worker."""

    state: TrainerState = "running"
    stage: str = Field("", description="The trainer stage running now (TRAINER_STAGES), or the last one.")
    step: int = 0
    total_steps: int = 0
    completed_stages: list[str] = []
    latest_metrics: dict = {}
    results: dict = Field({}, description="Per completed stage its final metrics, and `gates`: the verdicts.")
    rejected_reasons: list[str] = Field([], description="Why a gate rejected the round (state rejected).")
    error: str = Field("", description="Why the round failed or was interrupted, for the admin.")
    outputs: dict[str, str] = Field({}, description="On success: the model directories, relative to the work dir.")


# ---- command lines -----------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    """One --kebab-case option per field of `model`, its help the field's description and default.

    Values stay strings for pydantic to convert and check (`parse_arguments`); "none" sets an optional
    field to None, and a bool field is a flag pair (--use-margin / --no-use-margin)."""
    group = parser.add_argument_group(f"{model.__name__} (trainer/contract.py)")
    for name, field in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        nullable = type(None) in get_args(field.annotation)
        help_text = f"{field.description} (default: {field.default}{'; none for None' if nullable else ''})"
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
        if field.annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            if get_origin(field.annotation) is Literal:
                kwargs["metavar"] = "{" + ",".join(get_args(field.annotation)) + "}"
            else:
                [kind] = [t for t in get_args(field.annotation) or (field.annotation,) if t is not type(None)]
                kwargs["metavar"] = kind.__name__.upper()
        group.add_argument(flag, **kwargs)


def parse_arguments(parser: argparse.ArgumentParser, model: type[BaseModel], argv: list[str] | None):
    """(the command line's `model`, the other arguments); a value `model` refuses exits with a usage error."""
    namespace = parser.parse_args(argv)
    given = {k: v for k, v in vars(namespace).items() if k in model.model_fields}
    values = {k: None if isinstance(v, str) and v.lower() == "none" else v for k, v in given.items()}
    try:
        args = model.model_validate(values)
    except ValidationError as exc:
        parser.error("; ".join(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in exc.errors()))
    return args, argparse.Namespace(**{k: v for k, v in vars(namespace).items() if k not in given})
