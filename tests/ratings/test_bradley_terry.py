import math

import pytest

from app.ratings.bradley_terry import (
    ANCHOR_RATING,
    bootstrap,
    fit,
    head_to_head,
    wilson_interval,
)


def test_three_to_one_record_gives_elo_gap_of_log_odds():
    # With only x-vs-y battles, the MLE gives P(x beats y) = 3/4, i.e. a gap of 400*log10(3).
    battles = [(1, 2, 1.0)] * 30 + [(1, 2, 0.0)] * 10
    ratings = fit(battles, anchor=2, l2=0.0)
    assert ratings[2] == pytest.approx(ANCHOR_RATING)
    assert ratings[1] - ratings[2] == pytest.approx(400 * math.log10(3), abs=0.01)


def test_ties_count_as_half_a_win_each():
    ratings = fit([(1, 2, 0.5)] * 10, anchor=1)
    assert ratings[1] == pytest.approx(ratings[2], abs=1e-6)
    # one win plus two ties is a 2:1 record
    two_to_one = fit([(1, 2, 1.0), (1, 2, 0.5), (1, 2, 0.5)] * 10, anchor=2, l2=0.0)
    assert two_to_one[1] - two_to_one[2] == pytest.approx(400 * math.log10(2), abs=0.01)


def test_transitive_chain_orders_versions_and_clean_sweep_stays_finite():
    battles = [(3, 2, 1.0)] * 20 + [(2, 1, 1.0)] * 20 + [(3, 1, 1.0)] * 5
    ratings = fit(battles, anchor=1)
    assert ratings[3] > ratings[2] > ratings[1]
    assert all(math.isfinite(r) for r in ratings.values())


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_data():
    small = [(1, 2, 1.0)] * 6 + [(1, 2, 0.0)] * 4
    large = small * 20
    point = fit(large, anchor=2)[1]
    wide, narrow = bootstrap(small, anchor=2, rounds=100)[1], bootstrap(large, anchor=2, rounds=100)[1]
    assert narrow.low <= point <= narrow.high
    assert (narrow.high - narrow.low) < (wide.high - wide.low)


def test_head_to_head_reads_outcomes_from_either_side():
    battles = [(1, 2, 1.0), (2, 1, 1.0), (2, 1, 0.0), (1, 2, 0.5), (1, 3, 1.0)]
    record = head_to_head(battles, 1, 2)
    assert (record.wins, record.losses, record.ties) == (2, 1, 1)
    assert record.win_rate == pytest.approx(2 / 3)
    assert head_to_head([], 1, 2).win_rate is None


def test_wilson_interval_hand_computed():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) is None
