"""Side effects of a round (trainer/side_effects.py): distinct-n, the evasion detector and its default list,
the patterns' validation, and the optional gates on them (trainer/round.py gate_verdicts)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trainer.contract import DEFAULT_EVASION_PATTERNS, EvaluateConfig, GateConfig, describe_validation_error
from trainer.embedded import task
from trainer.round import gate_verdicts
from trainer.side_effects import EvasionDetector, change, distinct_n, relative_change, words

DEFAULT = EvasionDetector(DEFAULT_EVASION_PATTERNS)


# ---- distinct-n ----------------------------------------------------------------------------------------


def test_words_are_lowercased_without_punctuation_and_keep_contractions():
    assert words("Sorry, I DON’T know... Ask someone-else!") == [
        "sorry",
        "i",
        "don't",
        "know",
        "ask",
        "someone",
        "else",
    ]


def test_distinct_n_counts_over_all_answers_but_never_across_two():
    answers = ["the cat sat", "the cat ran", ""]
    # words: the cat sat | the cat ran -> 6 words, 4 distinct
    assert distinct_n(answers, 1) == pytest.approx(4 / 6)
    # bigrams: (the cat) (cat sat) | (the cat) (cat ran) -> 4, 3 distinct; no (sat the) across answers
    assert distinct_n(answers, 2) == pytest.approx(3 / 4)
    assert distinct_n(["same words here"] * 4, 2) == pytest.approx(2 / 8), "repeating answers lowers it"


def test_distinct_n_of_answers_without_n_grams_is_not_measured_rather_than_zero():
    assert distinct_n(["yes", "no", "..."], 2) is None
    assert distinct_n([], 1) is None


# ---- the evasion detector and its default list -------------------------------------------------------


def _templates() -> list[str]:
    ref = "the color blue"
    return [t.format(ref=ref) for t in task.EVASIONS_ON] + list(task.EVASIONS_OFF) + list(task.EVASION_FOLLOWUPS)


@pytest.mark.parametrize("text", _templates())
def test_the_default_list_catches_every_evasion_the_embedded_task_writes(text):
    assert DEFAULT.is_evasive(text)


def test_the_default_list_agrees_with_the_embedded_task_on_its_corpus():
    """Complete answers of the embedded corpus: every evasion is caught, no answer giving facts is flagged,
    whatever opener or closer wraps it."""
    corpus = [e for e in task.make_corpus(600, seed=3) if e.labels["complete"]]
    evasions = [e.response for e in corpus if not e.labels["helpful"]]
    helpful = [e.response for e in corpus if e.labels["helpful"]]
    assert len(evasions) > 100 and len(helpful) > 100
    assert [t for t in evasions if not DEFAULT.is_evasive(t)] == []
    assert [t for t in helpful if DEFAULT.is_evasive(t)] == []
    assert DEFAULT.share(evasions + helpful) == pytest.approx(len(evasions) / (len(evasions) + len(helpful)))


@pytest.mark.parametrize(
    "text",
    [
        "I can't help with that, sorry.",
        "As an AI language model, I have no opinions.",
        "You should consult a professional about this.",
        "I’m not able to discuss that.",  # curly apostrophe
        "Unfortunately, I cannot answer questions about medicine.",
        "i DO NOT know.",
    ],
)
def test_the_default_list_catches_common_refusals_outside_the_embedded_task(text):
    assert DEFAULT.is_evasive(text)


@pytest.mark.parametrize(
    "text",
    [
        "Paris is the capital of France, and it sits on the Seine.",
        "I know a great recipe: boil the pasta for nine minutes, then add the sauce.",
        "Sure! Tomatoes need six hours of sun a day. Hope this helps.",
        "Ask the shop for a sharper knife; it makes cutting onions easier.",
        "I can tell you that lions live in the grasslands of Africa and eat meat.",
        "Sorry for the wait! Cats sleep up to sixteen hours a day.",
    ],
)
def test_the_default_list_leaves_ordinary_answers_alone(text):
    assert not DEFAULT.is_evasive(text)


def test_the_detector_is_case_insensitive_and_uses_only_the_patterns_given():
    custom = EvasionDetector([r"\bno comment\b"])
    assert custom.is_evasive("NO COMMENT.") and not custom.is_evasive("Sorry, I don't know.")
    assert custom.share([]) is None


# ---- the patterns as configuration ---------------------------------------------------------------------


def test_the_default_config_holds_the_default_list():
    assert EvaluateConfig().evasion_patterns == list(DEFAULT_EVASION_PATTERNS)


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        (
            ["as an AI", "I (can't"],
            'evasion_patterns.1: "I (can\'t" is not a valid regular expression: missing ), unterminated subpattern '
            "at position 2",
        ),
        (["*sorry"], "evasion_patterns.0: '*sorry' is not a valid regular expression: nothing to repeat at position 0"),
        ([""], "evasion_patterns.0: String should have at least 1 character"),
    ],
)
def test_a_pattern_that_does_not_compile_is_refused_naming_it(patterns, message):
    with pytest.raises(ValidationError) as refused:
        EvaluateConfig(evasion_patterns=patterns)
    assert describe_validation_error(refused.value) == message


# ---- gates -------------------------------------------------------------------------------------------------

BASE_GATES = {"min_rm_accuracy": 0.6, "max_kl": 8.0, "min_eos_rate": 0.5}
EVALUATION = {
    "eval/kl": 1.0,
    "eval/eos_rate": 0.9,
    "eval/eos_rate_old": 0.9,
    "eval/response_length": 7.5,
    "eval/response_length_old": 12.0,
    "eval/distinct_1": 0.2,
    "eval/distinct_1_old": 0.3,
    "eval/distinct_2": 0.3,
    "eval/distinct_2_old": 0.5,
    "eval/evasion_rate": 0.73,
    "eval/evasion_rate_old": 0.45,
}


def test_change_and_relative_change_read_both_sides_and_refuse_unmeasured_ones():
    assert change(EVALUATION, "eval/evasion_rate") == pytest.approx(0.28)
    assert relative_change(EVALUATION, "eval/response_length") == pytest.approx(-0.375)
    assert change({"eval/distinct_2": 0.3, "eval/distinct_2_old": "nan"}, "eval/distinct_2") is None
    never_spoke = {"eval/response_length": 3.0, "eval/response_length_old": 0.0}
    assert relative_change(never_spoke, "eval/response_length") is None


def test_side_effect_gates_are_off_by_default():
    verdicts = gate_verdicts({"evaluate": EVALUATION}, GateConfig(**BASE_GATES))
    assert set(verdicts) == {"kl", "eos_rate"}


def test_a_candidate_whose_evasion_share_rises_beyond_the_gate_is_refused_saying_why():
    gates = GateConfig(**BASE_GATES, max_evasion_increase=0.05)
    verdict = gate_verdicts({"evaluate": EVALUATION}, gates)["evasion_increase"]
    assert verdict["passed"] is False
    assert verdict["value"] == pytest.approx(0.28) and (verdict["op"], verdict["limit"]) == ("<=", 0.05)
    assert verdict["setting"] == "gates.max_evasion_increase"
    assert verdict["reason"] == (
        "rise of the share of held-out answers marked as evasions (parent 45.0%, new 73.0%) is 0.28, the gate "
        "is <= 0.05 (gates.max_evasion_increase)"
    )
    fewer = EVALUATION | {"eval/evasion_rate": 0.40}
    assert gate_verdicts({"evaluate": fewer}, gates)["evasion_increase"]["passed"], "fewer evasions pass"


def test_length_and_diversity_gates_compare_with_the_parent():
    gates = GateConfig(**BASE_GATES, max_length_change=0.3, min_distinct_2_ratio=0.8)
    verdicts = gate_verdicts({"evaluate": EVALUATION}, gates)
    assert verdicts["length_change"]["value"] == pytest.approx(0.375) and not verdicts["length_change"]["passed"]
    assert "(parent 12.0, new 7.5 tokens)" in verdicts["length_change"]["reason"]
    assert verdicts["distinct_2_ratio"]["value"] == pytest.approx(0.6) and not verdicts["distinct_2_ratio"]["passed"]
    longer = EVALUATION | {"eval/response_length": 15.0, "eval/distinct_2": 0.45}
    verdicts = gate_verdicts({"evaluate": longer}, gates)
    assert verdicts["length_change"]["value"] == pytest.approx(0.25) and verdicts["length_change"]["passed"]
    assert verdicts["distinct_2_ratio"]["passed"]


def test_a_gate_on_a_figure_that_was_not_measured_fails_rather_than_passing_unseen():
    """A round evaluated before the figure existed, or a side whose answers had no word pairs."""
    gates = GateConfig(**BASE_GATES, max_evasion_increase=0.05, min_distinct_2_ratio=0.8)
    verdicts = gate_verdicts({"evaluate": {"eval/kl": 1.0, "eval/eos_rate": 0.9, "eval/distinct_2": None}}, gates)
    assert verdicts["evasion_increase"]["passed"] is False and verdicts["evasion_increase"]["value"] is None
    assert "(parent not measured, new not measured) is None" in verdicts["evasion_increase"]["reason"]
    assert verdicts["distinct_2_ratio"]["passed"] is False
