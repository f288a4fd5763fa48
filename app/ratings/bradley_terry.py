"""Bradley-Terry ratings of policy versions from pairwise human judgments, Chatbot-Arena style.

A battle is (version_x, version_y, outcome) with outcome 1.0 when x won, 0.0 when y won and 0.5 for a
tie ("both bad" counts as a tie: neither version earned the win). Ratings are on the Elo scale
(400 points = 10:1 odds) and anchored so that `anchor` sits at 1000, which makes them comparable across
refits. Pure numpy; the database side lives in service.py.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

SCALE = 400.0
BASE = 10.0
ANCHOR_RATING = 1000.0

# What is rated: the service rates policy version ids; anything hashable will do.
Model = TypeVar("Model", bound=Hashable)
Battle = tuple[Model, Model, float]


def fit(
    battles: Sequence[Battle[Model]], anchor: Model | None = None, l2: float = 1e-4, iterations: int = 100
) -> dict[Model, float]:
    """Maximum-likelihood ratings by Newton's method on the logistic loss.

    Ties enter as half a win for each side (the fractional outcome in the loss), as Chatbot Arena
    does by counting a tie as one win and one loss with half weight. A tiny L2 term keeps the fit
    finite when a version has won (or lost) every battle.
    """
    models = sorted({m for x, y, _ in battles for m in (x, y)}, key=str)
    if not models:
        return {}
    index = {m: i for i, m in enumerate(models)}
    x = np.array([index[b[0]] for b in battles])
    y = np.array([index[b[1]] for b in battles])
    outcome = np.array([b[2] for b in battles], dtype=float)
    k = np.log(BASE) / SCALE
    theta = np.zeros(len(models))  # natural-log-odds strengths
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(theta[x] - theta[y])))  # P(x beats y)
        residual = outcome - p
        grad = np.bincount(x, residual, len(models)) - np.bincount(y, residual, len(models)) - l2 * theta
        weight = p * (1 - p)
        hessian = np.diag(np.bincount(x, weight, len(models)) + np.bincount(y, weight, len(models)) + l2)
        np.subtract.at(hessian, (x, y), weight)
        np.subtract.at(hessian, (y, x), weight)
        # lstsq: without L2 the Hessian is singular along "shift every rating equally" (no information).
        step = np.linalg.lstsq(hessian, grad, rcond=None)[0]
        theta += step
        if np.max(np.abs(step)) < 1e-9:
            break
    ratings = theta / k
    offset = ANCHOR_RATING - (ratings[index[anchor]] if anchor in index else ratings.mean())
    return {m: float(ratings[index[m]] + offset) for m in models}


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def bootstrap(
    battles: Sequence[Battle[Model]],
    anchor: Model | None = None,
    rounds: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[Model, Interval]:
    """Percentile intervals of each rating over `rounds` refits on battles resampled with replacement."""
    if not battles:
        return {}
    rng = np.random.default_rng(seed)
    samples: dict[Model, list[float]] = {}
    for _ in range(rounds):
        picked = rng.integers(0, len(battles), len(battles))
        for model, rating in fit([battles[i] for i in picked], anchor=anchor).items():
            samples.setdefault(model, []).append(rating)
    tail = (1 - confidence) / 2 * 100
    return {m: Interval(float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))) for m, v in samples.items()}


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
