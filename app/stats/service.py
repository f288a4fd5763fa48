"""The numbers behind the console and /api/v1/stats: read-only aggregate queries over the annotation
tables, handed to the pure functions in app.stats.metrics. The page and the API call the same
functions, so they show the same numbers."""

from __future__ import annotations

import statistics
import typing
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime, timedelta

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.auth.models import Role, User
from app.comparisons.models import Choice, Comparison, ComparisonStatus
from app.core.db import utcnow
from app.judgments.models import Judgment
from app.policies import service as policies_service
from app.prompts.models import Prompt
from app.queue.models import Skip
from app.stats import metrics
from app.stats.schemas import (
    ActivePolicy,
    Agreement,
    AnnotatorStats,
    HourCount,
    PairAgreement,
    PositionBiasRead,
    Progress,
    RoundProgress,
    UserRef,
)
from app.training import service as training_service

HOURS_SHOWN = 24


def _count(db: Session, query: Select[int]) -> int:
    return db.scalar(query) or 0


def progress(*, db: Session, now: datetime | None = None) -> Progress:
    """Prompts, the comparison pool, annotation pace, the active policy and the round in flight."""
    now = now or utcnow()
    hour_start = now.replace(minute=0, second=0, microsecond=0)
    window_start = hour_start - timedelta(hours=HOURS_SHOWN - 1)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    by_status = dict(db.execute(select(Comparison.status, func.count()).group_by(Comparison.status)).all())
    recent = list(db.scalars(select(Judgment.created_at).where(Judgment.created_at >= window_start)))
    hourly = metrics.hourly_counts((t.timestamp() for t in recent), window_start.timestamp(), HOURS_SHOWN)
    active = policies_service.get_active(db=db)
    return Progress(
        prompts_total=_count(db, select(func.count()).select_from(Prompt)),
        prompts_active=_count(db, select(func.count()).where(Prompt.is_active.is_(True))),
        comparisons_ready=by_status.get(ComparisonStatus.ready, 0),
        comparisons_completed=by_status.get(ComparisonStatus.completed, 0),
        comparisons_retired=by_status.get(ComparisonStatus.retired, 0),
        comparisons_gold=_count(db, select(func.count()).where(Comparison.is_gold.is_(True))),
        judgments_total=_count(db, select(func.count()).select_from(Judgment)),
        judgments_today=_count(db, select(func.count()).where(Judgment.created_at >= day_start)),
        judgments_last_hour=sum(t >= now - timedelta(hours=1) for t in recent),
        judgments_per_hour=[
            HourCount(start=window_start + timedelta(hours=i), judgments=n) for i, n in enumerate(hourly)
        ],
        annotators_active=_count(
            db,
            select(func.count(func.distinct(Judgment.annotator_id))).where(
                Judgment.created_at >= now - timedelta(hours=24)
            ),
        ),
        active_policy=ActivePolicy(id=active.id, number=active.number, activated_at=active.activated_at)
        if active
        else None,
        current_round=_current_round(db),
        generated_at=now,
    )


def _current_round(db: Session) -> RoundProgress | None:
    found = training_service.in_flight(db=db)
    if found is None:
        return None
    return RoundProgress(
        id=found.id,
        status=found.status.value,
        stage=found.stage,
        completed_stages=found.completed_stages,
        step=found.step,
        total_steps=found.total_steps,
        started_at=found.started_at,
        fraction=metrics.rate(min(found.step, found.total_steps), found.total_steps),
    )


def _overlap_units(db: Session) -> dict[int, dict[int, str]]:
    """comparison id -> {annotator id: choice}, for comparisons with two or more judgments."""
    shared = select(Judgment.comparison_id).group_by(Judgment.comparison_id).having(func.count() >= 2)
    units: dict[int, dict[int, str]] = defaultdict(dict)
    for comparison_id, annotator_id, choice in db.execute(
        select(Judgment.comparison_id, Judgment.annotator_id, Judgment.choice).where(Judgment.comparison_id.in_(shared))
    ):
        units[comparison_id][annotator_id] = Choice(choice).value
    return units


def annotator_stats(*, db: Session, now: datetime | None = None) -> list[AnnotatorStats]:
    """One row per annotator (and per admin who has judged): volume, speed, rates, position bias,
    gold accuracy and agreement with the others on shared comparisons."""
    now = now or utcnow()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    choices: dict[int, Counter[tuple[str, str]]] = defaultdict(Counter)
    for annotator_id, choice, shown_left, n in db.execute(
        select(Judgment.annotator_id, Judgment.choice, Judgment.shown_left, func.count()).group_by(
            Judgment.annotator_id, Judgment.choice, Judgment.shown_left
        )
    ):
        choices[annotator_id][Choice(choice).value, shown_left] += n
    today = dict(
        db.execute(
            select(Judgment.annotator_id, func.count())
            .where(Judgment.created_at >= day_start)
            .group_by(Judgment.annotator_id)
        ).all()
    )
    last = dict(
        db.execute(select(Judgment.annotator_id, func.max(Judgment.created_at)).group_by(Judgment.annotator_id)).all()
    )
    skips = dict(db.execute(select(Skip.annotator_id, func.count()).group_by(Skip.annotator_id)).all())
    times: dict[int, list[int]] = defaultdict(list)
    # The WHERE leaves no NULL time, which the column's type (int | None) cannot say.
    timed = typing.cast(
        Iterable[tuple[int, int]],
        db.execute(select(Judgment.annotator_id, Judgment.time_spent_ms).where(Judgment.time_spent_ms.is_not(None))),
    )
    for annotator_id, spent in timed:
        times[annotator_id].append(spent)
    gold = _gold_tally(db, Judgment.annotator_id)
    agreement = metrics.agreement_with_others(_overlap_units(db))
    users = db.scalars(
        select(User)
        .where(or_(User.role == Role.annotator, User.id.in_(set(choices) | set(skips))))
        .order_by(User.username)
    )
    rows = []
    for user in users:
        counts = choices.get(user.id, Counter())
        judged = sum(counts.values())
        by_choice: Counter[str] = Counter()
        for (choice_value, _left), n in counts.items():
            by_choice[choice_value] += n
        chose_left = counts["a", "a"] + counts["b", "b"]
        bias = metrics.position_bias(chose_left, by_choice["a"] + by_choice["b"])
        user_skips = skips.get(user.id, 0)
        pairs, agreed, kappa = agreement.get(user.id, (0, 0, None))
        gold_judged, gold_correct = gold.get(user.id, (0, 0))
        rows.append(
            AnnotatorStats(
                user_id=user.id,
                username=user.username,
                role=user.role.value,
                is_active=user.is_active,
                excluded_from_training=user.excluded_from_training,
                judgments=judged,
                judgments_today=today.get(user.id, 0),
                skips=user_skips,
                skip_rate=metrics.rate(user_skips, judged + user_skips),
                tie_rate=metrics.rate(by_choice["tie"], judged),
                both_bad_rate=metrics.rate(by_choice["both_bad"], judged),
                median_time_ms=statistics.median(times[user.id]) if times.get(user.id) else None,
                position_bias=PositionBiasRead(**asdict(bias), significant=bias.significant),
                gold_judged=gold_judged,
                gold_correct=gold_correct,
                gold_accuracy=metrics.rate(gold_correct, gold_judged),
                overlap_pairs=pairs,
                agreement_rate=metrics.rate(agreed, pairs),
                kappa_vs_others=kappa,
                last_judgment_at=last.get(user.id),
            )
        )
    return rows


def agreement(*, db: Session) -> Agreement:
    """Krippendorff's alpha over every shared comparison, and Cohen's kappa per annotator pair."""
    units = _overlap_units(db)
    alpha = metrics.krippendorff_alpha_nominal(list(labels.values()) for labels in units.values())
    per_pair = metrics.pairwise_kappas(units)
    raters = {i for pair in per_pair for i in pair}
    names = dict(db.execute(select(User.id, User.username).where(User.id.in_(raters))).all())
    pairs = [
        PairAgreement(
            annotator_a=UserRef(id=a, username=names[a]),
            annotator_b=UserRef(id=b, username=names[b]),
            shared=shared,
            agreed=agreed,
            agreement_rate=agreed / shared,
            kappa=kappa,
        )
        for (a, b), (shared, agreed, kappa) in per_pair.items()
    ]
    pairs.sort(key=lambda p: (-p.shared, p.annotator_a.username, p.annotator_b.username))
    return Agreement(
        alpha=alpha,
        alpha_reading=metrics.alpha_reading(alpha),
        units=len(units),
        judgments=sum(len(labels) for labels in units.values()),
        pairs=pairs,
    )


def gold_results(*, db: Session) -> dict[int, tuple[int, int]]:
    """gold comparison id -> (judgments, correct ones), for the gold comparisons judged so far."""
    return _gold_tally(db, Judgment.comparison_id)


def _gold_tally(db: Session, key: InstrumentedAttribute[int]) -> dict[int, tuple[int, int]]:
    """key (a Judgment column) -> (judgments of gold comparisons, how many gave the expected answer)."""
    tally: dict[int, tuple[int, int]] = {}
    for value, choice, expected, n in db.execute(
        select(key, Judgment.choice, Comparison.gold_choice, func.count())
        .join(Comparison, Judgment.comparison_id == Comparison.id)
        .where(Comparison.is_gold.is_(True), Comparison.gold_choice.is_not(None))
        .group_by(key, Judgment.choice, Comparison.gold_choice)
    ):
        judged, correct = tally.get(value, (0, 0))
        tally[value] = (judged + n, correct + (n if choice == expected else 0))
    return tally
