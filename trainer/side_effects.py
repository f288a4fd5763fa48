"""What a round traded away, measured on the answers themselves: diversity and refusals/evasions.

trainer/evaluate.py decodes the held-out answers of the new policy and of its parent and reports these
figures for both under the names in trainer/contract.py (DISTINCT_1, DISTINCT_2, EVASION_RATE), beside
the answer length and EOS rate it measures on tokens. Pure Python (no torch), so the app and the tests
can call it on plain strings.

distinct-n (Li et al. 2016, "A Diversity-Promoting Objective Function for Neural Conversation Models"):
distinct n-grams / n-grams, counted over all of one side's answers, on decoded words (lowercased runs of
letters, digits and apostrophes; punctuation is not a word), so the figure does not depend on the
tokenizer. An n-gram never spans two answers. A policy that repeats itself, within an answer or across
answers, scores lower.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from trainer.contract import OLD_SUFFIX

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def words(text: str) -> list[str]:
    """The answer's words, lowercased, with curly apostrophes read as straight ones."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def distinct_n(texts: Iterable[str], n: int) -> float | None:
    """Distinct word n-grams / word n-grams over `texts`; None when they hold no n-gram at all (a figure
    that was not measured is not reported as 0)."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        tokens = words(text)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else None


class EvasionDetector:
    """Marks an answer as a refusal or evasion when any of `patterns` (regular expressions, matched
    case-insensitively anywhere in it) matches; the round's evaluate.evasion_patterns, checked to compile
    when the round is configured (trainer/contract.py)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = [re.compile(p, re.IGNORECASE) for p in patterns]

    def is_evasive(self, text: str) -> bool:
        text = text.replace("\u2019", "'")
        return any(p.search(text) for p in self.patterns)

    def share(self, texts: Sequence[str]) -> float | None:
        """The share of `texts` it marks; None for no texts."""
        return sum(map(self.is_evasive, texts)) / len(texts) if texts else None


def _finite(value: Any) -> float | None:
    """A number the trainer measured; None for one it did not (missing, None, or a non-finite string)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def parent_and_new(evaluation: dict, key: str) -> tuple[float | None, float | None]:
    """(the parent's, the new policy's) value of the side effect `key` in the evaluate stage's results."""
    return _finite(evaluation.get(key + OLD_SUFFIX)), _finite(evaluation.get(key))


def change(evaluation: dict, key: str) -> float | None:
    """New minus parent; None unless both were measured."""
    parent, new = parent_and_new(evaluation, key)
    return None if parent is None or new is None else new - parent


def relative_change(evaluation: dict, key: str) -> float | None:
    """(new - parent) / parent; None unless both were measured and the parent's is not 0."""
    parent, new = parent_and_new(evaluation, key)
    return None if parent is None or new is None or parent == 0 else (new - parent) / parent
