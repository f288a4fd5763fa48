"""A round's configuration (what an admin may override) and the shapes the rounds API returns.

The configuration is the app's half of a file-format contract: it is written into the round's
snapshot as config.json and read by `python -m trainer.round`. The `reward` and `ppo` sections carry
the same field names and defaults as trainer.reward.RewardArgs and trainer.ppo.PPOArgs (a test checks
both), so the console can show every default without importing torch; fields not listed here keep
the trainer's own defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.core.config import Settings
from app.core.errors import Unprocessable
from app.training.models import RoundStatus

DEVICE_DEFAULT = "auto"
DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
DEVICE_HELP = "torch device on the worker: auto (cuda when the worker has a GPU), cpu, cuda or cuda:N."
Precision = Literal["auto", "fp32", "bf16"]
PRECISION_HELP = (
    "Forward passes: auto (bf16 mixed precision on CUDA, fp32 on CPU), bf16 (also on CPU: faster on CPUs "
    "with native bf16, much slower elsewhere) or fp32."
)


class _Section(BaseModel):
    # An unknown key is a typo the admin should hear about, not a setting silently ignored.
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    include_ties: bool = Field(description="Train on ties and both-bad judgments as pairs in both orders.")
    heldout_fraction: float = Field(gt=0, lt=1, description="Share of prompts whose pairs are held out.")
    min_heldout_pairs: int = Field(ge=1, description="Fewer held-out pairs than this fails the round.")


class RewardConfig(_Section):
    num_epochs: int = Field(1, ge=1, le=100)
    learning_rate: float = Field(3e-4, gt=0, le=1)
    batch_size: int = Field(16, ge=1, le=4096, description="Pairs per optimizer step.")
    max_length: int = Field(
        256, ge=8, le=65536, description="Longest prompt + response (tokens); longer pairs are dropped."
    )
    use_margin: bool = Field(False, description="Use the annotators' strength as a margin in the loss.")
    center_rewards_coefficient: float | None = Field(0.01, ge=0)
    seed: int = Field(0, ge=0)
    device: str = Field(DEVICE_DEFAULT, pattern=DEVICE_PATTERN, description=DEVICE_HELP)
    precision: Precision = Field("auto", description=PRECISION_HELP)


class PPOConfig(_Section):
    total_episodes: int | None = Field(
        None,
        ge=1,
        description="Episodes in the whole run (a multiple of batch_size); None: num_prompt_epochs.",
    )
    num_prompt_epochs: float = Field(1.0, gt=0, le=1000, description="Passes over the training prompts.")
    batch_size: int = Field(16, ge=1, le=65536, description="Episodes per PPO update.")
    num_mini_batches: int = Field(1, ge=1, description="Optimizer steps per PPO epoch; must divide batch_size.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro-batches per minibatch; must divide batch_size / num_mini_batches."
    )
    num_ppo_epochs: int = Field(4, ge=1, le=100)
    learning_rate: float = Field(3e-5, gt=0, le=1)
    kl_coef: float = Field(0.05, ge=0)
    kl_estimator: Literal["k1", "k3"] = "k1"
    adaptive_kl: bool = False
    kl_target: float = Field(6.0, gt=0)
    missing_eos_penalty: float | None = Field(1.0, ge=0)
    whiten_rewards: bool = False
    cliprange: float = Field(0.2, gt=0)
    vf_coef: float = Field(0.1, ge=0)
    response_length: int = Field(64, ge=1, le=32768, description="Max new tokens per response.")
    temperature: float = Field(0.7, gt=0, le=10)
    checkpoint_every: int = Field(10, ge=0, description="Updates between resumable checkpoints (0: none).")
    seed: int = Field(0, ge=0)
    device: str = Field(DEVICE_DEFAULT, pattern=DEVICE_PATTERN, description=DEVICE_HELP + " Also used to evaluate.")
    precision: Precision = Field("auto", description=PRECISION_HELP + " Also used to evaluate.")

    def batch_size_problem(self) -> tuple[str, str] | None:
        """(field, message) for sizes that do not tile exactly, checked before any process starts."""
        if self.batch_size % self.num_mini_batches:
            return "num_mini_batches", (
                f"num_mini_batches ({self.num_mini_batches}) must divide batch_size ({self.batch_size})."
            )
        mini_batch = self.batch_size // self.num_mini_batches
        if mini_batch % self.gradient_accumulation_steps:
            return "gradient_accumulation_steps", (
                f"gradient_accumulation_steps ({self.gradient_accumulation_steps}) must divide the minibatch "
                f"size batch_size / num_mini_batches ({mini_batch})."
            )
        if self.total_episodes is not None and self.total_episodes % self.batch_size:
            return "total_episodes", (
                f"total_episodes ({self.total_episodes}) must be a multiple of batch_size ({self.batch_size})."
            )
        if self.whiten_rewards and self.batch_size < 8:
            return "whiten_rewards", "whiten_rewards needs batch_size >= 8 for a meaningful variance."
        return None


class EvaluateConfig(_Section):
    max_prompts: int = Field(64, ge=1, le=10000, description="Held-out prompts sampled to compare old and new policy.")
    samples_per_prompt: int = Field(2, ge=1, le=64)
    batch_size: int = Field(64, ge=1, le=4096, description="Sequences generated per batch.")
    seed: int = Field(0, ge=0)


class GateConfig(_Section):
    min_rm_accuracy: float = Field(ge=0, le=1, description="Reward model accuracy on held-out pairs.")
    max_kl: float = Field(gt=0, description="Mean per-answer KL (nats) to the reference on held-out prompts.")
    min_eos_rate: float = Field(ge=0, le=1, description="Share of held-out answers the new policy ends itself.")
    min_score_gain: float | None = Field(
        None, description="Mean held-out reward-model score of the new policy minus the old one's; None: off."
    )


class RoundConfig(_Section):
    reference: Literal["base", "previous"] = Field(
        description="PPO's frozen reference: the lineage's base policy, or the version the round starts from."
    )
    activate: bool = Field(description="Activate the new policy when the round succeeds (else a candidate).")
    data: DataConfig
    reward: RewardConfig = RewardConfig()
    ppo: PPOConfig = PPOConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    gates: GateConfig


def default_config(settings: Settings) -> dict:
    """The configuration a round gets without overrides: trainer defaults plus the TRAINING_* settings."""
    return RoundConfig(
        reference=settings.TRAINING_REFERENCE,
        activate=settings.TRAINING_AUTO_ACTIVATE,
        data=DataConfig(
            include_ties=settings.TRAINING_INCLUDE_TIES,
            heldout_fraction=settings.TRAINING_HELDOUT_FRACTION,
            min_heldout_pairs=settings.TRAINING_MIN_HELDOUT_PAIRS,
        ),
        gates=GateConfig(
            min_rm_accuracy=settings.TRAINING_MIN_RM_ACCURACY,
            max_kl=settings.TRAINING_MAX_KL,
            min_eos_rate=settings.TRAINING_MIN_EOS_RATE,
            min_score_gain=settings.TRAINING_MIN_SCORE_GAIN,
        ),
    ).model_dump()


def resolve_config(*, settings: Settings, overrides: dict) -> RoundConfig:
    """Defaults (trainer defaults and TRAINING_* settings) with `overrides` merged in, validated."""
    if not isinstance(overrides, dict):
        raise Unprocessable("The round configuration must be a JSON object.", loc=("body",))
    try:
        config = RoundConfig.model_validate(_merge(default_config(settings), overrides))
    except ValidationError as exc:
        errors = exc.errors()
        where = lambda e: ".".join(str(p) for p in e["loc"]) or "body"  # noqa: E731
        raise Unprocessable(
            "; ".join(f"{where(e)}: {e['msg']}" for e in errors), loc=("body", *errors[0]["loc"])
        ) from exc
    if problem := config.ppo.batch_size_problem():
        field, msg = problem
        raise Unprocessable(f"ppo.{field}: {msg}", loc=("body", "ppo", field))
    return config


def _merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = _merge(base[key], value) if isinstance(base.get(key), dict) and isinstance(value, dict) else value
    return merged


# ---- API shapes -----------------------------------------------------------------------------------------


class RoundRead(BaseModel):
    """A round as the console and the API show it; refreshed live from the worker's reconciliation."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    status: RoundStatus
    stage: str = Field(description="snapshot | reward_model | ppo | evaluate | publish, or '' before it starts.")
    completed_stages: list[str]
    step: int
    total_steps: int
    progress: float = Field(0.0, description="step / total_steps of the current stage, 0..1.")
    latest_metrics: dict
    results: dict = Field(description="Final metrics per stage, the gate verdicts and the held-out evaluation.")
    error: str = Field(description="Why the round failed, was rejected or was cancelled.")
    log_tail: str = Field(description="The end of the trainer's log.")
    config: dict
    snapshot_max_judgment_id: int | None
    executor: str
    handle: str
    worker_id: str
    heartbeat_at: datetime | None
    cancel_requested: bool
    requested_by_id: int | None = Field(description="The admin who launched it; None when the schedule did.")
    trigger: Literal["admin", "schedule"] = "admin"
    base_policy_version_id: int | None = Field(description="The version the round started from (the new one's parent).")
    base_policy_number: int | None = None
    policy_version_id: int | None = Field(description="The policy version the round published.")
    policy_number: int | None = None
    reward_model_id: int | None
    reward_model_number: int | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RoundPage(BaseModel):
    items: list[RoundRead]
    total: int


class MetricPointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    stage: str
    step: int
    values: dict
    created_at: datetime


class MetricHistory(BaseModel):
    """Points for the live charts. Poll with since=<next_since>; a point whose (stage, step) was seen
    before replaces it (a round resumed from a checkpoint logs those steps again)."""

    round_id: int
    items: list[MetricPointRead]
    next_since: int = Field(description="Pass as ?since= to get only newer points.")


class ConfigInfo(BaseModel):
    defaults: dict = Field(description="What a round launched without overrides runs with.")
    json_schema: dict = Field(description="JSON Schema of the full configuration (types, limits, help).")
