"""The pure statistics behind the console, against hand-computed and published values."""

from __future__ import annotations

import math
import random

import krippendorff
import numpy as np
import pytest

from app.stats import metrics


def test_cohen_kappa_matches_the_textbook_two_by_two_example():
    # 50 items: both "yes" 20, only the first 5, only the second 10, both "no" 15.
    # p_o = 35/50 = 0.7, p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5, kappa = (0.7 - 0.5) / 0.5 = 0.4.
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert metrics.cohen_kappa(pairs) == pytest.approx(0.4)


def test_cohen_kappa_over_the_four_choices_by_hand():
    # 6 items; agreements on 4 (p_o = 2/3). Rater 1: a a a b tie both_bad, rater 2: a a b b tie tie.
    # p_e = (3*2 + 1*2 + 1*2 + 1*0) / 36 = 10/36, kappa = (24/36 - 10/36) / (26/36) = 14/26.
    pairs = [("a", "a"), ("a", "a"), ("a", "b"), ("b", "b"), ("tie", "tie"), ("both_bad", "tie")]
    assert metrics.cohen_kappa(pairs) == pytest.approx(14 / 26)


def test_cohen_kappa_is_one_for_perfect_agreement_and_negative_for_systematic_disagreement():
    assert metrics.cohen_kappa([("a", "a"), ("b", "b"), ("tie", "tie")]) == pytest.approx(1.0)
    assert metrics.cohen_kappa([("a", "b"), ("b", "a")]) == pytest.approx(-1.0)


def test_cohen_kappa_is_undefined_without_overlap_or_variation():
    assert metrics.cohen_kappa([]) is None
    # Both raters always said "a": agreement is forced, kappa is 0/0.
    assert metrics.cohen_kappa([("a", "a")] * 5) is None


def test_krippendorff_alpha_matches_the_published_nominal_example_with_missing_data():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", four observers, twelve units,
    # nominal: alpha = 0.743. Unit 12 has a single value and is not pairable.
    observers = [
        "1 2 3 3 2 1 4 1 2 . . .",
        "1 2 3 3 2 2 4 1 2 5 . 3",
        ". 3 3 3 2 3 4 2 2 5 1 .",
        "1 2 3 3 2 4 4 1 2 5 1 .",
    ]
    table = [row.split() for row in observers]
    units = [[row[u] for row in table if row[u] != "."] for u in range(12)]
    assert metrics.krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_agrees_with_the_krippendorff_package_on_random_judgments():
    rng = random.Random(7)
    choices = ["a", "b", "tie", "both_bad"]
    raters, items = 5, 40
    table = [[np.nan] * items for _ in range(raters)]
    for item in range(items):
        truth = rng.choice(choices)
        for rater in rng.sample(range(raters), rng.randint(1, raters)):
            label = truth if rng.random() < 0.7 else rng.choice(choices)
            table[rater][item] = float(choices.index(label))
    expected = krippendorff.alpha(reliability_data=table, level_of_measurement="nominal")
    units = [[choices[int(row[i])] for row in table if not math.isnan(row[i])] for i in range(items)]
    assert metrics.krippendorff_alpha_nominal(units) == pytest.approx(expected, abs=1e-9)


def test_krippendorff_alpha_edge_cases():
    assert metrics.krippendorff_alpha_nominal([]) is None
    assert metrics.krippendorff_alpha_nominal([["a"], ["b"]]) is None  # nothing pairable
    assert metrics.krippendorff_alpha_nominal([["a", "a"], ["a", "a", "a"]]) is None  # one category
    perfect = [["a", "a"], ["b", "b", "b"], ["tie", "tie"]]
    assert metrics.krippendorff_alpha_nominal(perfect) == pytest.approx(1.0)
    # Two units, each split evenly: every coincidence is a disagreement.
    # o_ab = o_ba = 2, n = 4, D_e = (16 - 8) / 3, alpha = 1 - 4 / (8/3) = -0.5.
    assert metrics.krippendorff_alpha_nominal([["a", "b"], ["b", "a"]]) == pytest.approx(-0.5)


def test_alpha_reading_uses_krippendorffs_thresholds():
    assert [metrics.alpha_reading(v) for v in (None, 0.9, 0.8, 0.7, 0.5)] == [
        "undefined",
        "reliable",
        "reliable",
        "tentative",
        "unreliable",
    ]


def test_position_bias_share_interval_and_exact_test():
    # 8 of 10 on the left: P(X >= 8) = (45 + 10 + 1) / 1024 = 56/1024, two-sided p = 112/1024.
    bias = metrics.position_bias(8, 10)
    assert bias.share == pytest.approx(0.8)
    assert bias.p_value == pytest.approx(112 / 1024)
    assert not bias.significant
    assert bias.ci_low < 0.8 < bias.ci_high
    # Wilson 95% interval for 8/10, by hand: (0.4902, 0.9433).
    assert (bias.ci_low, bias.ci_high) == pytest.approx((0.4902, 0.9433), abs=1e-3)


def test_position_bias_on_many_judgments_is_significant_and_numerically_stable():
    bias = metrics.position_bias(5600, 10000)
    assert bias.significant and 0 < bias.p_value < 1e-20
    balanced = metrics.position_bias(5000, 10000)
    assert balanced.p_value == pytest.approx(1.0) and not balanced.significant


def test_position_bias_without_side_picking_judgments_is_undefined():
    bias = metrics.position_bias(0, 0)
    assert (bias.share, bias.ci_low, bias.ci_high, bias.p_value) == (None, None, None, None)
    assert not bias.significant


def test_pairwise_kappas_and_agreement_with_others():
    # Three comparisons: 1 judged by raters 1, 2, 3; 2 by 1 and 2; 3 by 2 only (not shared).
    units = {
        1: {1: "a", 2: "a", 3: "b"},
        2: {1: "b", 2: "b"},
        3: {2: "tie"},
    }
    per_pair = metrics.pairwise_kappas(units)
    assert set(per_pair) == {(1, 2), (1, 3), (2, 3)}
    assert per_pair[1, 2] == (2, 2, pytest.approx(1.0))
    assert per_pair[1, 3] == (1, 0, pytest.approx(0.0))  # p_o = 0, p_e = 0: kappa 0
    others = metrics.agreement_with_others(units)
    # Rater 1: (a,a) (a,b) on comparison 1, (b,b) on comparison 2 -> 3 pairs, 2 agree.
    assert others[1][:2] == (3, 2)
    assert others[2][:2] == (3, 2)  # comparison 3 has no one else: it adds nothing
    assert others[3][:2] == (2, 0)
    assert set(others) == {1, 2, 3}


def test_hourly_counts_buckets_by_clock_hour_and_ignores_the_outside():
    start = 1_000_000.0
    stamps = [start - 1, start, start + 3599, start + 3600, start + 2 * 3600 + 5, start + 3 * 3600]
    assert metrics.hourly_counts(stamps, start, 3) == [2, 1, 1]


def test_rate_is_undefined_for_an_empty_whole():
    assert metrics.rate(0, 0) is None
    assert metrics.rate(1, 4) == 0.25
