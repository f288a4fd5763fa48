"""The activation rule (app/training/activation.py) on a round's results, case by case."""

from __future__ import annotations

import pytest

from app.training.activation import decide

CONFIG = {"activate": True, "rollout_share": 0.0, "gates": {"max_kl": 8.0}}


def _results(gain, low, high, kl=1.0, confidence=0.95) -> dict:
    return {
        "evaluate": {
            "eval/score_gain": gain,
            "eval/score_gain_low": low,
            "eval/score_gain_high": high,
            "eval/confidence": confidence,
            "eval/kl": kl,
        }
    }


@pytest.mark.parametrize(
    "results, decision, says",
    [
        (_results(0.3, 0.1, 0.5), "activated", "it beats its parent with confidence"),
        (_results(0.05, -0.01, 0.11), "candidate", "the interval reaches 0"),
        (_results(0.05, 0.0, 0.1), "candidate", "the interval reaches 0"),
        (_results(-0.017, -0.05, -0.002), "candidate", "it scores worse than its parent"),
        (_results(0.2, "-inf", "inf"), "candidate", "too few held-out prompts to bound the gain"),
        (_results(0.3, 0.1, 0.5, kl="nan"), "candidate", "is not within the gate"),
        (_results(0.3, 0.1, 0.5, kl=9.0), "candidate", "is not within the gate"),
        ({}, "candidate", "the round reported no held-out score gain"),
    ],
)
def test_only_a_confident_gain_within_the_kl_gate_is_activated(results, decision, says):
    verdict = decide(results=results, config=CONFIG)
    assert verdict.decision == decision and says in verdict.reason


def test_the_reason_states_the_gain_and_its_interval():
    verdict = decide(results=_results(-0.017, -0.05, -0.002), config=CONFIG)
    assert verdict.reason == (
        "Not activated: held-out score gain -0.017 (95% interval -0.050 to -0.002): it scores worse than its "
        "parent. It stays a candidate; an admin may still activate it."
    )
    assert (verdict.score_gain, verdict.score_gain_low, verdict.kl, verdict.max_kl) == (-0.017, -0.05, 1.0, 8.0)


def test_with_automatic_activation_off_a_confident_gain_waits_for_an_admin():
    verdict = decide(results=_results(0.3, 0.1, 0.5), config=CONFIG | {"activate": False})
    assert verdict.decision == "candidate" and "automatic activation is off" in verdict.reason


def test_with_a_rollout_people_decide_even_on_a_confident_gain():
    verdict = decide(results=_results(0.3, 0.1, 0.5), config=CONFIG | {"rollout_share": 0.2})
    assert verdict.decision == "rollout" and verdict.reason.startswith("People decide: a 20% share of new pairs")
