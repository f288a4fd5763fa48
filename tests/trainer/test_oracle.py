"""The oracle win rate (trainer/oracle.py): independent draws for the two sides, and the samples described."""

from __future__ import annotations

from trainer.embedded.judge import QUALITIES
from trainer.generate import SamplingParams
from trainer.oracle import describe, oracle_win_rate


def _longer(prompt: str, a: str, b: str) -> float:
    return float(len(a) > len(b)) - float(len(b) > len(a))


def test_a_policy_against_itself_is_not_a_wall_of_ties(tiny_policy_dir):
    # With one seed for both sides, a policy judged against itself would draw the same texts and tie on
    # every prompt; the base's draws have their own seed, so the verdicts are wins and losses by chance.
    prompts = [f"question number {i}" for i in range(40)]
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=12)
    result, _paired = oracle_win_rate(tiny_policy_dir, tiny_policy_dir, prompts, _longer, params, seed=3)
    assert result.wins > 5 and result.losses > 5, result
    assert set(result.new) == set(result.base) == {*QUALITIES, "evasive", "words"}


def test_describe_counts_evasions_helpfulness_and_words():
    prompts = ["How do I pitch a tent for camping?"] * 2
    texts = [
        "Sorry, I don't really know much about camping. You could ask someone else.",
        "Pick flat ground, lay the footprint, then stake the corners of the tent before the poles.",
    ]
    described = describe(prompts, texts)
    assert described["evasive"] == 0.5
    assert described["helpful"] == 0.5  # the evasion is not helpful, the answer is
    assert described["words"] == (13 + 16) / 2


def test_paired_draws_of_a_policy_against_itself_tie_everywhere(tiny_policy_dir):
    prompts = [f"question number {i}" for i in range(12)]
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=12)
    _independent, result = oracle_win_rate(tiny_policy_dir, tiny_policy_dir, prompts, _longer, params, seed=3)
    assert (result.wins, result.losses, result.ties) == (0, 0, 12)
    assert result.win_rate is None and result.win_rate_ties_half == 0.5
