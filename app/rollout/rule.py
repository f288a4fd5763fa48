"""The rule that ends a human-gated rollout, as pure functions of its battles.

Only rollout battles count: judgments, since the rollout started, of pairs with one answer from the
candidate and one from its parent (ties and both-bad as half a win each, as the leaderboard counts them).
They are fitted with the leaderboard's Bradley-Terry model (app/ratings/bradley_terry.py: MAP with a
Gaussian prior of 200 Elo points, Laplace intervals), anchored at the parent, so the candidate's rating
minus 1000 is the rating difference and its interval is the difference's interval. The prior pulls the
difference towards 0, so a few lucky judgments do not decide anything.

Once there are at least MIN_BATTLES rollout battles:
    activate      when the difference's lower bound is above 0 (people prefer the candidate);
    reject        when its upper bound is below 0 (people prefer the parent);
    inconclusive  when neither happened by the cap (max battles, or the deadline).

The rule is checked again after every judgment, and each look is another chance for noise to cross a
bound; the default confidence (TRAINING_ROLLOUT_CONFIDENCE) is therefore stricter than 95%, chosen by
simulation so that indifferent annotators rarely decide anything (bench/bench_rollout.py; the README's
"When a new policy goes live").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.ratings import bradley_terry as bt
from app.ratings.service import MIN_BATTLES
from app.rollout.models import RolloutStatus


@dataclass(frozen=True)
class Evidence:
    """Rollout battles from the candidate's side, and its rating minus the parent's (Elo points)."""

    battles: int
    wins: int
    losses: int
    ties: int
    rating_diff: float | None
    rating_diff_low: float | None
    rating_diff_high: float | None


def evidence(battles: Sequence[bt.Battle[int]], *, candidate: int, parent: int, confidence: float) -> Evidence:
    """The evidence in `battles` (only those between candidate and parent are used)."""
    own = [b for b in battles if {b[0], b[1]} == {candidate, parent}]
    record = bt.head_to_head(own, candidate, parent)
    rating = bt.fit(own, anchor=parent, confidence=confidence).get(candidate)
    if rating is None:
        return Evidence(0, 0, 0, 0, None, None, None)
    anchor = bt.ANCHOR_RATING
    return Evidence(
        battles=len(own),
        wins=record.wins,
        losses=record.losses,
        ties=record.ties,
        rating_diff=rating.rating - anchor,
        rating_diff_low=rating.low - anchor,
        rating_diff_high=rating.high - anchor,
    )


def describe(found: Evidence, confidence: float) -> str:
    """The evidence in one line, for the verdict's reason."""
    if found.rating_diff is None:
        return "no rollout judgments"
    return (
        f"{found.battles} rollout judgments ({found.wins} won, {found.losses} lost, {found.ties} tied); rating "
        f"difference {found.rating_diff:+.0f} Elo, {confidence * 100:g}% interval {found.rating_diff_low:+.0f} to "
        f"{found.rating_diff_high:+.0f}"
    )


def verdict(
    found: Evidence, *, confidence: float, max_battles: int, past_deadline: bool
) -> tuple[RolloutStatus, str] | None:
    """How the rollout ends on this evidence, with the reason; None while it goes on."""
    shown = describe(found, confidence)
    if found.battles >= MIN_BATTLES and found.rating_diff_low is not None and found.rating_diff_low > 0:
        return RolloutStatus.activated, f"People prefer the candidate: {shown}, above 0."
    if found.battles >= MIN_BATTLES and found.rating_diff_high is not None and found.rating_diff_high < 0:
        return RolloutStatus.rejected, f"People prefer the parent: {shown}, below 0."
    if found.battles >= max_battles:
        return RolloutStatus.inconclusive, f"No verdict within the cap of {max_battles} judgments: {shown}."
    if past_deadline:
        return RolloutStatus.inconclusive, f"No verdict before the deadline: {shown}."
    return None
