"""A round's plan: the configuration it would run with and what its snapshot would hold, before launch.

One function, `plan_round`, reads the data and writes nothing. It resolves the configuration the way a
launch does (trainer defaults, TRAINING_* settings, the size-dependent defaults of trainer/defaults.py,
then the admin's overrides), counts what the snapshot would contain with the snapshot's own code
(app/training/snapshot.py), and lists every check the snapshot would fail with the number there and the
number needed. A launch stores the plan's configuration; the console's form, `POST /api/v1/rounds?dry_run=true`,
`prefloop rounds launch --dry-run` and the dashboard show the plan.

The derived values come in two passes because the held-out share decides the split that the other
sizes (training pairs, held-out pairs, PPO prompts) are counted on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.policies import service as policy_service
from app.training import snapshot
from app.training.schemas import RoundConfig, fixed_by_settings, resolve_config
from trainer import defaults as round_defaults
from trainer.defaults import Derived, RoundSizes


@dataclass
class RoundPlan:
    config: RoundConfig
    derived: dict[str, Derived] = field(default_factory=dict)  # "section.field" -> value and reason
    counts: dict = field(default_factory=dict)  # as the snapshot's manifest would have them
    shortfalls: list[snapshot.Shortfall] = field(default_factory=list)
    num_parameters: int | None = None  # of the active policy; None when it cannot be read

    @property
    def possible(self) -> bool:
        return not self.shortfalls

    @property
    def judgments_needed(self) -> int | None:
        """About how many usable judgments a possible round needs in all; None when more judgments alone
        would not make one (no policy, no prompts)."""
        if any(s.more_judgments is None for s in self.shortfalls):
            return None
        return self.counts["strict"] + max((s.more_judgments or 0 for s in self.shortfalls), default=0)

    def to_json(self) -> dict:
        return {
            "possible": self.possible,
            "shortfalls": [vars(s) for s in self.shortfalls],
            "counts": self.counts,
            "num_parameters": self.num_parameters,
            "derived": {path: vars(d) for path, d in self.derived.items()},
            "config": self.config.model_dump(),
        }


def plan_round(*, db: Session, settings: Settings, overrides: dict) -> RoundPlan:
    """The round a launch with `overrides` would queue now; Unprocessable (422) for an invalid configuration."""
    active = policy_service.get_active(db=db)
    sizes = RoundSizes(
        num_parameters=round_defaults.count_parameters(Path(active.path)) if active else None,
        usable_pairs=snapshot.count_usable_judgments(db=db),  # strict: ties make no held-out pairs
        train_pairs=0,
        eval_pairs=0,
        ppo_prompts=0,
    )
    explicit = _paths(overrides) | fixed_by_settings(settings)
    derived = {"data.heldout_fraction": round_defaults.heldout_fraction(sizes.usable_pairs)}
    first = resolve_config(settings=settings, overrides=overrides, derived=_unless(explicit, derived))
    counts, shortfalls = snapshot.survey(db=db, config=first)
    sizes = RoundSizes(
        num_parameters=sizes.num_parameters,
        usable_pairs=sizes.usable_pairs,
        train_pairs=counts["train_pairs"],
        eval_pairs=counts["eval_pairs"],
        ppo_prompts=counts["ppo_prompts"],
    )
    reward_batch = first.reward.batch_size if "reward.batch_size" in explicit else None
    more = round_defaults.derive(sizes, min_heldout_pairs=first.data.min_heldout_pairs, reward_batch=reward_batch)
    derived = _unless(explicit, derived | more)
    config = resolve_config(settings=settings, overrides=overrides, derived=derived)
    return RoundPlan(config, derived, counts, shortfalls, sizes.num_parameters)


def _unless(explicit: set[str], derived: dict[str, Derived]) -> dict[str, Derived]:
    return {path: value for path, value in derived.items() if path not in explicit}


def _paths(overrides: dict, prefix: str = "") -> set[str]:
    """The dotted paths `overrides` sets ("reward.learning_rate"); a non-object is left to validation."""
    if not isinstance(overrides, dict):
        return set()
    paths = set()
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        paths |= _paths(value, f"{path}.") if isinstance(value, dict) else {path}
    return paths
