"""Bradley-Terry ratings of policy versions from pairwise human judgments, Chatbot-Arena style.

A battle is (version_x, version_y, outcome) with outcome 1.0 when x won, 0.0 when y won and 0.5 for a
tie ("both bad" counts as a tie: neither version earned the win). Ratings are on the Elo scale
(400 points = 10:1 odds) with `anchor` fixed at 1000, which makes them comparable across refits.

The fit is a maximum a posteriori (MAP) estimate: the logistic loss of the battles plus a Gaussian prior
on every rating's offset from the anchor, i.e. the L2 penalty PRIOR_PENALTY * sum_i (theta_i - theta_anchor)^2
(theta in natural log-odds). Without it one battle won puts the winner at +infinity (the maximum-likelihood
fit diverges on a clean sweep) and a handful of battles at hundreds of points; with it a version starts
at the anchor and moves as evidence accumulates, while many battles outweigh the prior and the fit
converges to the maximum-likelihood answer.

Intervals use the Laplace approximation: near the MAP the posterior is taken as Gaussian with covariance
the inverse Hessian of the penalised loss (the matrix Newton's method already builds), so a rating's
interval is rating +/- z * sd. Unlike a bootstrap (every resample of a single battle is that same battle,
which gives a zero-width interval), it stays as wide as the prior when data is thin and narrows as
1/sqrt(battles) when it is not. The anchor is the reference point, so its own rating is exact.
Pure numpy; the database side lives in service.py.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TypeVar

import numpy as np

SCALE = 400.0
BASE = 10.0
ANCHOR_RATING = 1000.0
LOG_ODDS_PER_POINT = np.log(BASE) / SCALE

# Prior standard deviation of a version's rating around the anchor, in Elo points. 200 points means that
# before any judgment a version is believed (95%) within +/-400 points of the anchor: a win probability
# against it between 9% and 91%, which covers what one training round does to a policy. One battle then
# moves a rating by about 90 points instead of to infinity, and a few dozen battles outweigh the prior.
PRIOR_SD = 200.0
# lambda of the penalty lambda * (theta_i - theta_anchor)^2: a Gaussian prior's -log density, 1 / (2 sd^2).
PRIOR_PENALTY = 1.0 / (2.0 * (PRIOR_SD * LOG_ODDS_PER_POINT) ** 2)

# What is rated: the service rates policy version ids; anything hashable will do.
Model = TypeVar("Model", bound=Hashable)
Battle = tuple[Model, Model, float]


@dataclass(frozen=True)
class Rating:
    rating: float
    low: float
    high: float


def fit(
    battles: Sequence[Battle[Model]],
    anchor: Model,
    penalty: float = PRIOR_PENALTY,
    confidence: float = 0.95,
    iterations: int = 100,
) -> dict[Model, Rating]:
    """MAP ratings of every version in `battles` by Newton's method, with Laplace intervals.

    Ties enter as half a win for each side (the fractional outcome in the loss), as Chatbot Arena
    does by counting a tie as one win and one loss with half weight. The anchor is the prior's centre
    even when it has not battled; `penalty=0` gives the maximum-likelihood fit.
    """
    rated = sorted({m for x, y, _ in battles for m in (x, y)}, key=str)
    if not rated:
        return {}
    models = rated if anchor in rated else [anchor, *rated]
    index = {m: i for i, m in enumerate(models)}
    free = np.array([i for i, m in enumerate(models) if m != anchor])  # the anchor's strength stays 0
    x = np.array([index[b[0]] for b in battles])
    y = np.array([index[b[1]] for b in battles])
    outcome = np.array([b[2] for b in battles], dtype=float)
    n = len(models)
    theta = np.zeros(n)  # natural-log-odds strengths
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(theta[x] - theta[y])))  # P(x beats y)
        residual = outcome - p
        grad = np.bincount(x, residual, n) - np.bincount(y, residual, n) - 2 * penalty * theta
        weight = p * (1 - p)
        hessian = np.diag(np.bincount(x, weight, n) + np.bincount(y, weight, n) + 2 * penalty)
        np.subtract.at(hessian, (x, y), weight)
        np.subtract.at(hessian, (y, x), weight)
        hessian = hessian[np.ix_(free, free)]
        step = np.linalg.solve(hessian, grad[free])
        theta[free] += step
        if np.max(np.abs(step)) < 1e-9:
            break
    sd = np.zeros(n)
    sd[free] = np.sqrt(np.diag(np.linalg.inv(hessian)))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    ratings, margins = ANCHOR_RATING + theta / LOG_ODDS_PER_POINT, z * sd / LOG_ODDS_PER_POINT
    rows = ((m, float(ratings[index[m]]), float(margins[index[m]])) for m in rated)
    return {m: Rating(rating, rating - margin, rating + margin) for m, rating, margin in rows}


@dataclass(frozen=True)
class HeadToHead:
    wins: int
    losses: int
    ties: int

    @property
    def decided(self) -> int:
        return self.wins + self.losses

    @property
    def win_rate(self) -> float | None:
        """wins / (wins + losses); ties are reported beside it, not folded in."""
        return self.wins / self.decided if self.decided else None


def head_to_head(battles: Sequence[Battle[Model]], model: Model, opponent: Model) -> HeadToHead:
    wins = losses = ties = 0
    for x, y, outcome in battles:
        if {x, y} != {model, opponent} or x == y:
            continue
        score = outcome if x == model else 1 - outcome
        if score == 0.5:
            ties += 1
        elif score > 0.5:
            wins += 1
        else:
            losses += 1
    return HeadToHead(wins, losses, ties)


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson score interval for a proportion; None without trials."""
    if trials == 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    margin = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return float(centre - margin), float(centre + margin)
