"""Agreement and quality statistics as pure functions: plain values in, numbers (or None) out.

None means "not defined for this data" (no overlap, or no variation at all) and the console shows
it as "—"; a number is never invented for it. Labels are the judgment choices a | b | tie | both_bad
in completion terms, treated as nominal categories.

References: Cohen (1960); Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011), whose
nominal example with missing data (alpha = 0.743) is one of the tests. The Wilson interval is the
ratings leaderboard's own.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import permutations

from app.ratings.bradley_terry import wilson_interval


def rate(part: int, whole: int) -> float | None:
    """part / whole, or None when there is nothing to divide."""
    return part / whole if whole else None


def cohen_kappa(pairs: Iterable[tuple[str, str]]) -> float | None:
    """Cohen's kappa for two raters over the items both labelled, given as (label_1, label_2) pairs.

    kappa = (p_o - p_e) / (1 - p_e), p_o the observed agreement and p_e the agreement expected from
    each rater's own label frequencies. None when there are no pairs, or when both raters used one
    and the same label throughout (p_e = 1: agreement by construction, so kappa is 0/0).
    """
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return None
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    p_o = sum(a == b for a, b in pairs) / n
    p_e = sum(first[label] * second[label] for label in first) / (n * n)
    if p_e == 1:
        return None
    return (p_o - p_e) / (1 - p_e)


def krippendorff_alpha_nominal(units: Iterable[Sequence[str]]) -> float | None:
    """Krippendorff's alpha for nominal data; each unit is the list of labels it received.

    Units with fewer than two labels are not pairable and are left out. Built from the coincidence
    matrix: each unit with m labels contributes 1 / (m - 1) for every ordered pair of its labels.
    alpha = 1 - D_o / D_e = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k.
    None when no unit is pairable or when every label is the same (no variation: D_e = 0).
    """
    coincidences: defaultdict[tuple[str, str], float] = defaultdict(float)
    for labels in units:
        m = len(labels)
        if m < 2:
            continue
        for c, k in permutations(labels, 2):
            coincidences[c, k] += 1 / (m - 1)
    totals: defaultdict[str, float] = defaultdict(float)
    for (c, _k), weight in coincidences.items():
        totals[c] += weight
    n = sum(totals.values())
    if n == 0:
        return None
    disagreement_observed = sum(w for (c, k), w in coincidences.items() if c != k)
    disagreement_expected = (n * n - sum(v * v for v in totals.values())) / (n - 1)
    if disagreement_expected <= 1e-12:
        return None
    return 1 - disagreement_observed / disagreement_expected


@dataclass(frozen=True)
class PositionBias:
    """How often the completion shown on the left was chosen, among judgments that picked a side."""

    left: int
    decided: int
    share: float | None
    ci_low: float | None
    ci_high: float | None
    # Two-sided exact binomial test against "no preference for either side" (p = 1/2).
    p_value: float | None

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < 0.05


def binomial_test_half(successes: int, trials: int) -> float | None:
    """Two-sided exact binomial test of successes out of trials against p = 1/2.

    The distribution is symmetric, so the p-value is 2 * P(X <= min(k, n - k)), capped at 1.
    Probabilities are summed in log space so thousands of trials neither overflow nor underflow.
    """
    if trials == 0:
        return None
    tail = min(successes, trials - successes)
    log_half_n = trials * math.log(0.5)
    log_terms = [
        math.lgamma(trials + 1) - math.lgamma(i + 1) - math.lgamma(trials - i + 1) + log_half_n for i in range(tail + 1)
    ]
    top = max(log_terms)
    log_tail = top + math.log(sum(math.exp(t - top) for t in log_terms))
    return min(1.0, 2 * math.exp(log_tail))


def position_bias(left: int, decided: int) -> PositionBias:
    """Share of side-picking judgments that chose the left side, its 95% interval and test."""
    interval = wilson_interval(left, decided)
    return PositionBias(
        left=left,
        decided=decided,
        share=rate(left, decided),
        ci_low=interval[0] if interval else None,
        ci_high=interval[1] if interval else None,
        p_value=binomial_test_half(left, decided),
    )


def alpha_reading(alpha: float | None) -> str:
    """Krippendorff's own reading of alpha: >= 0.8 reliable, >= 0.667 tentative, else unreliable."""
    if alpha is None:
        return "undefined"
    if alpha >= 0.8:
        return "reliable"
    if alpha >= 0.667:
        return "tentative"
    return "unreliable"


def pairwise_kappas(units: dict[int, dict[int, str]]) -> dict[tuple[int, int], tuple[int, int, float | None]]:
    """For every pair of raters (lower id first) that share items: (shared, agreed, kappa).

    `units` maps an item to {rater: label}; only items with two or more raters matter.
    """
    shared: dict[tuple[int, int], list[tuple[str, str]]] = {}
    for labels in units.values():
        raters = sorted(labels)
        for i, first in enumerate(raters):
            for second in raters[i + 1 :]:
                shared.setdefault((first, second), []).append((labels[first], labels[second]))
    return {pair: (len(pairs), sum(a == b for a, b in pairs), cohen_kappa(pairs)) for pair, pairs in shared.items()}


def agreement_with_others(units: dict[int, dict[int, str]]) -> dict[int, tuple[int, int, float | None]]:
    """For every rater: (pairs, agreed, kappa) of their label against each other rater's label on
    the same item, pooled over all items they share with anyone."""
    pooled: dict[int, list[tuple[str, str]]] = {}
    for labels in units.values():
        for rater, label in labels.items():
            pooled.setdefault(rater, []).extend(
                (label, other_label) for other, other_label in labels.items() if other != rater
            )
    return {
        rater: (len(pairs), sum(a == b for a, b in pairs), cohen_kappa(pairs))
        for rater, pairs in pooled.items()
        if pairs
    }


def hourly_counts(timestamps_s: Iterable[float], start_s: float, hours: int) -> list[int]:
    """Events per hour in the `hours` one-hour buckets from start_s on (Unix seconds), oldest first;
    events outside the window are ignored."""
    counts = [0] * hours
    for moment in timestamps_s:
        bucket = math.floor((moment - start_s) / 3600)
        if 0 <= bucket < hours:
            counts[bucket] += 1
    return counts
