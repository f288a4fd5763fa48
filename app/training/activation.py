"""Whether a round's new policy goes live when it is published: the activation rule.

A published version is activated automatically only when its round's own held-out evaluation says it
beats its parent with confidence: the lower end of the score gain's interval (trainer/evaluate.py, a
paired bootstrap over held-out prompts at evaluate.confidence) is above 0, and its KL to the reference is
within the gate. Everything else is published as a candidate, with the reason, and the round still
succeeds: a candidate is not a failure, it waits for an admin, or for people when the round asked for a
human-gated rollout (rollout_share > 0, app/rollout/), which then decides instead of the held-out rule.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel

from trainer.contract import SCORE_GAIN, SCORE_GAIN_HIGH, SCORE_GAIN_LOW, Stage

Decision = Literal["activated", "candidate", "rollout"]


class ActivationVerdict(BaseModel):
    """What happened to a round's new policy at publish and why; kept in the round's results."""

    decision: Decision
    reason: str
    score_gain: float | None
    score_gain_low: float | None
    score_gain_high: float | None
    confidence: float | None
    kl: float | None
    max_kl: float


def _number(value: object) -> float | None:
    """A finite number from the results (the trainer writes non-finite ones as strings), else None."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def _held_out(gain: float | None, low: float | None, high: float | None, kl: float | None, max_kl: float,
              measured: str) -> tuple[bool, str]:  # fmt: skip
    """(whether the held-out evaluation shows a confident gain within the KL gate, and what it shows)."""
    if gain is None:
        return False, "the round reported no held-out score gain, so nothing shows that it beats its parent"
    if low is None:
        return False, f"{measured}: too few held-out prompts to bound the gain, so it does not beat its parent"
    if high is not None and high < 0:
        return False, f"{measured}: it scores worse than its parent"
    if low <= 0:
        return False, f"{measured}: the interval reaches 0, so it does not beat its parent with confidence"
    if kl is None or kl > max_kl:
        return False, f"{measured}, but its held-out KL ({kl}) is not within the gate (<= {max_kl:g})"
    return True, f"{measured}: it beats its parent with confidence, and its KL {kl:.3g} is within the gate"


def decide(*, results: dict, config: dict) -> ActivationVerdict:
    """The verdict for a succeeded round with these results (per stage) and this configuration."""
    evaluation = results.get(Stage.evaluate, {})
    gain, low, high = (_number(evaluation.get(k)) for k in (SCORE_GAIN, SCORE_GAIN_LOW, SCORE_GAIN_HIGH))
    confidence = _number(evaluation.get("eval/confidence"))
    kl, max_kl = _number(evaluation.get("eval/kl")), float(config["gates"]["max_kl"])
    evidence = {
        "score_gain": gain, "score_gain_low": low, "score_gain_high": high, "confidence": confidence, "kl": kl,
        "max_kl": max_kl,
    }  # fmt: skip
    level = f"{confidence * 100:g}%" if confidence is not None else "its"
    bounds = f" ({level} interval {_signed(low)} to {_signed(high)})" if low is not None and high is not None else ""
    measured = f"held-out score gain {_signed(gain)}{bounds}" if gain is not None else "no held-out score gain"
    if config.get("rollout_share", 0) > 0:
        return ActivationVerdict(
            decision="rollout",
            reason=f"People decide: a {config['rollout_share']:.0%} share of new pairs compares it with its parent "
            f"(human-gated rollout); the {measured} is shown as evidence only.",
            **evidence,
        )
    passed, shown = _held_out(gain, low, high, kl, max_kl, measured)
    if passed and config.get("activate"):
        return ActivationVerdict(decision="activated", reason=f"Activated automatically: {shown}.", **evidence)
    if passed:
        reason = f"Not activated: automatic activation is off for this round ({shown}). An admin may activate it."
    else:
        reason = f"Not activated: {shown}. It stays a candidate; an admin may still activate it."
    return ActivationVerdict(decision="candidate", reason=reason, **evidence)
