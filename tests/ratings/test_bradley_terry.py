import math

import pytest

from app.ratings.bradley_terry import (
    ANCHOR_RATING,
    fit,
    head_to_head,
    wilson_interval,
)


def _width(rating) -> float:
    return rating.high - rating.low


def test_three_to_one_record_gives_elo_gap_of_log_odds():
    # With only x-vs-y battles, the MLE gives P(x beats y) = 3/4, i.e. a gap of 400*log10(3).
    battles = [(1, 2, 1.0)] * 30 + [(1, 2, 0.0)] * 10
    ratings = fit(battles, anchor=2, penalty=0.0)
    assert ratings[2].rating == pytest.approx(ANCHOR_RATING)
    assert ratings[1].rating - ratings[2].rating == pytest.approx(400 * math.log10(3), abs=0.01)


def test_ties_count_as_half_a_win_each():
    ratings = fit([(1, 2, 0.5)] * 10, anchor=1)
    assert ratings[1].rating == pytest.approx(ratings[2].rating, abs=1e-6)
    # one win plus two ties is a 2:1 record
    two_to_one = fit([(1, 2, 1.0), (1, 2, 0.5), (1, 2, 0.5)] * 10, anchor=2, penalty=0.0)
    assert two_to_one[1].rating - two_to_one[2].rating == pytest.approx(400 * math.log10(2), abs=0.01)


def test_transitive_chain_orders_versions_and_clean_sweep_stays_finite():
    battles = [(3, 2, 1.0)] * 20 + [(2, 1, 1.0)] * 20 + [(3, 1, 1.0)] * 5
    ratings = fit(battles, anchor=1)
    assert ratings[3].rating > ratings[2].rating > ratings[1].rating
    assert all(math.isfinite(r.rating) and math.isfinite(r.high) for r in ratings.values())


def test_one_battle_gives_a_modest_rating_with_a_wide_interval():
    rating = fit([(2, 1, 1.0)], anchor=1)[2]
    assert 0 < rating.rating - ANCHOR_RATING < 100
    assert rating.low < ANCHOR_RATING < rating.high  # one win does not show v2 is better
    assert _width(rating) >= 200


def test_long_one_sided_record_converges_to_the_maximum_likelihood_fit():
    battles = [(2, 1, 1.0)] * 150 + [(2, 1, 0.0)] * 50
    prior, ml = fit(battles, anchor=1)[2], fit(battles, anchor=1, penalty=0.0)[2]
    assert ml.rating - ANCHOR_RATING == pytest.approx(400 * math.log10(3), abs=0.01)
    assert prior.rating == pytest.approx(ml.rating, abs=5)
    assert _width(prior) < 120
    assert prior.low > ANCHOR_RATING + 100


def test_interval_contains_the_estimate_and_narrows_with_data():
    small = [(1, 2, 1.0)] * 6 + [(1, 2, 0.0)] * 4
    wide, narrow = fit(small, anchor=2)[1], fit(small * 20, anchor=2)[1]
    assert narrow.low < narrow.rating < narrow.high
    assert _width(narrow) < _width(wide) / 3  # about 1/sqrt(20) of it, less the prior's share
    # the Laplace interval is symmetric on the Elo scale; the anchor is the reference and exact
    assert narrow.rating - narrow.low == pytest.approx(narrow.high - narrow.rating)
    assert fit(small, anchor=2)[2].low == fit(small, anchor=2)[2].high == ANCHOR_RATING


def test_versions_that_never_met_the_anchor_are_centred_on_it_by_the_prior():
    ratings = fit([(2, 3, 1.0)] * 14 + [(2, 3, 0.0)] * 6, anchor=1)
    assert set(ratings) == {2, 3}
    assert (ratings[2].rating + ratings[3].rating) / 2 == pytest.approx(ANCHOR_RATING)
    assert ratings[2].rating > ratings[3].rating
    assert ratings[2].low < ANCHOR_RATING  # how they compare with the anchor is unknown
    assert fit([], anchor=1) == {}


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
