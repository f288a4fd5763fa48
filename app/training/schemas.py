"""A round's configuration as an admin may override it, and the shapes the rounds API returns.

The configuration's sections, their defaults, limits and help are the round contract's
(trainer/contract.py, imported without torch): it is written into the round's snapshot as config.json
and read by `python -m trainer.round`. An admin may set the reward-model and PPO arguments listed
here; the others keep the trainer's defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from app.core.config import Settings
from app.core.errors import Unprocessable
from app.training.models import RoundStatus
from app.training.round_view import SideEffectRow
from trainer import contract
from trainer import defaults as round_defaults
from trainer.contract import DataConfig, GateConfig, PPOArgs, RewardArgs, batch_size_problem, describe_validation_error
from trainer.defaults import Derived

REWARD_OVERRIDABLE = (
    "num_epochs", "learning_rate", "batch_size", "max_length", "use_margin", "center_rewards_coefficient", "seed",
    "device", "precision",
)  # fmt: skip
PPO_OVERRIDABLE = (
    "total_episodes", "num_prompt_epochs", "batch_size", "num_mini_batches", "gradient_accumulation_steps",
    "num_ppo_epochs", "learning_rate", "kl_coef", "kl_estimator", "adaptive_kl", "kl_target", "missing_eos_penalty",
    "whiten_rewards", "cliprange", "vf_coef", "response_length", "temperature", "checkpoint_every", "seed", "device",
    "precision",
)  # fmt: skip


def _overridable(name: str, args: type[BaseModel], fields: tuple[str, ...]) -> type[BaseModel]:
    """The section of `args` an admin may set: those fields, each with the contract's default, limits and help."""
    definitions: dict[str, Any] = {
        field: (args.model_fields[field].annotation, args.model_fields[field]) for field in fields
    }
    return create_model(
        name,
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"The {args.__name__} (trainer/contract.py) an admin may set for a round.",
        **definitions,
    )


if TYPE_CHECKING:
    # Classes made by create_model at run time are invisible to a static checker; it sees the contract's
    # arguments, whose fields these sections are a subset of, with the same types.
    RewardConfig = RewardArgs
    PPOConfig = PPOArgs
else:
    RewardConfig = _overridable("RewardConfig", RewardArgs, REWARD_OVERRIDABLE)
    PPOConfig = _overridable("PPOConfig", PPOArgs, PPO_OVERRIDABLE)


class RoundConfig(contract.RoundConfig):
    """The round contract's configuration with the reward and PPO sections an admin may set."""

    reward: RewardConfig = RewardConfig()
    ppo: PPOConfig = PPOConfig()


NO_DERIVED: Mapping[str, Derived] = MappingProxyType({})  # before the data is counted


def default_config(settings: Settings, derived: Mapping[str, Derived] = NO_DERIVED) -> dict:
    """The configuration a round gets without overrides: trainer defaults, the TRAINING_* settings, and the
    `derived` values (trainer/defaults.py, computed by app/training/plan.py) where neither fixes them."""
    config = RoundConfig(
        reference=settings.TRAINING_REFERENCE,
        activate=settings.TRAINING_AUTO_ACTIVATE,
        rollout_share=settings.TRAINING_ROLLOUT_SHARE,
        data=DataConfig(
            include_ties=settings.TRAINING_INCLUDE_TIES,
            heldout_fraction=_setting_or_derived(settings, derived, "data.heldout_fraction"),
            min_heldout_pairs=settings.TRAINING_MIN_HELDOUT_PAIRS,
        ),
        gates=GateConfig(
            min_rm_accuracy=_setting_or_derived(settings, derived, "gates.min_rm_accuracy"),
            max_kl=settings.TRAINING_MAX_KL,
            min_eos_rate=settings.TRAINING_MIN_EOS_RATE,
            min_score_gain=settings.TRAINING_MIN_SCORE_GAIN,
            max_evasion_increase=settings.TRAINING_MAX_EVASION_INCREASE,
            max_length_change=settings.TRAINING_MAX_LENGTH_CHANGE,
            min_distinct_2_ratio=settings.TRAINING_MIN_DISTINCT_2_RATIO,
        ),
    ).model_dump()
    for path, value in derived.items():
        if path not in fixed_by_settings(settings):
            section, field = path.split(".")
            config[section][field] = value.value
    return config


def fixed_by_settings(settings: Settings) -> set[str]:
    """The derived fields whose TRAINING_* setting is set, fixing them for every round."""
    fixable = {"data.heldout_fraction": settings.TRAINING_HELDOUT_FRACTION}
    fixable["gates.min_rm_accuracy"] = settings.TRAINING_MIN_RM_ACCURACY
    return {path for path, value in fixable.items() if value is not None}


def _setting_or_derived(settings: Settings, derived: Mapping[str, Derived], path: str) -> float:
    setting = {"data.heldout_fraction": settings.TRAINING_HELDOUT_FRACTION}
    setting["gates.min_rm_accuracy"] = settings.TRAINING_MIN_RM_ACCURACY
    if (fixed := setting[path]) is not None:
        return fixed
    if path in derived:
        return float(derived[path].value)
    # Before the data is counted, the rule's value for the smallest snapshot a round accepts stands in.
    if path == "data.heldout_fraction":
        return float(round_defaults.heldout_fraction(0).value)
    return float(round_defaults.min_rm_accuracy(settings.TRAINING_MIN_HELDOUT_PAIRS).value)


def resolve_config(*, settings: Settings, overrides: dict, derived: Mapping[str, Derived] = NO_DERIVED) -> RoundConfig:
    """Defaults (trainer defaults, TRAINING_* settings, derived values) with `overrides` merged in, validated."""
    if not isinstance(overrides, dict):
        raise Unprocessable("The round configuration must be a JSON object.", loc=("body",))
    try:
        config = RoundConfig.model_validate(_merge(default_config(settings, derived), overrides))
    except ValidationError as exc:
        raise Unprocessable(describe_validation_error(exc), loc=("body", *exc.errors()[0]["loc"])) from exc
    if problem := batch_size_problem(PPOArgs.model_validate(config.ppo.model_dump())):
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
    stage_states: dict[str, str] = Field(
        {},
        description="Per stage, in order: done | current | failed | rejected (its gate refused) | stopped "
        "(cancelled while it ran) | pending (not reached).",
    )
    stages_done: int = Field(0, description="How many stages are done (stage_states).")
    round_progress: float = Field(
        0.0, description="The whole round, 0..1: stages done, plus the running stage's share while it runs."
    )
    latest_metrics: dict
    results: dict = Field(description="Final metrics per stage, the gate verdicts and the held-out evaluation.")
    side_effects: list[SideEffectRow] = Field(
        [],
        description="Once the evaluate stage completed: per figure (evasion share, distinct-1/2, answer length, "
        "EOS rate) the parent's and the new policy's value on the same held-out prompts, and the change.",
    )
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


class DerivedRead(BaseModel):
    value: float | int
    reason: str


class ShortfallRead(BaseModel):
    what: str
    there: int
    needed: int
    message: str
    more_judgments: int | None = Field(description="About how many more usable judgments would make up for it.")


class RoundPlanRead(BaseModel):
    """POST /rounds?dry_run=true: what a round launched now would run with and train on; nothing is queued."""

    possible: bool = Field(description="False when the snapshot would fail a check (listed in shortfalls).")
    shortfalls: list[ShortfallRead] = Field(description="Every check the snapshot would fail, with the numbers.")
    counts: dict = Field(description="What the snapshot would hold: judgments, train/eval pairs, PPO/eval prompts.")
    num_parameters: int | None = Field(description="The active policy's parameters (None: unreadable).")
    derived: dict[str, DerivedRead] = Field(description="The size-dependent defaults this round gets, with why.")
    config: dict = Field(description="The resolved configuration.")


class ConfigInfo(BaseModel):
    defaults: dict = Field(description="What a round launched now without overrides runs with.")
    derived: dict[str, DerivedRead] = Field(
        {}, description="Which of the defaults are derived from the policy's and the data's size, and why."
    )
    json_schema: dict = Field(description="JSON Schema of the full configuration (types, limits, help).")
