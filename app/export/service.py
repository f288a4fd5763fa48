"""Reading judgments out: the raw cursor-paginated list and the streamed training-library exports.

Both read the same joined rows (judgment + comparison + prompt + both completions and their policy
versions) through one filtered query, so a row in an export can always be traced to the judgment in
the list: same pseudonymous annotator id, same judgment id, same round.

Export layouts (one JSON object per line; Parquet files have the same columns, see formats.py):
  trl  {"prompt", "chosen", "rejected", "metadata"}: chat-message lists (style=conversational) or
       strings (style=standard), TRL's explicit-prompt preference rows.
  hh   {"chosen", "rejected", "metadata"}: Anthropic HH-RLHF transcripts
       ("\\n\\nHuman: ...\\n\\nAssistant: ...").
  raw  one Chatbot-Arena battle row per judgment (ties and both-bad kept), plus every stored field.
  kto  {"prompt", "completion", "label", "metadata"}: unpaired rows, winner true and loser false.
"metadata" carries the comparison, prompt and completion ids, the policy versions, the prompt-level
split, and the judgments behind the row (id, pseudonymous annotator, choice, strength, round ...).

An export reads in keyset-paginated batches inside one session and is bounded by the highest
judgment id when it started, so memory stays flat and the result does not depend on its speed.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import hmac
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    Integer,
    Label,
    Select,
    SQLColumnExpression,
    String,
    Text,
    bindparam,
    cast,
    func,
    or_,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy.orm import Session, aliased

from app.auth.models import User
from app.comparisons.models import Choice, Comparison, Completion
from app.core.db import Database
from app.core.errors import Unprocessable
from app.judgments.models import Judgment
from app.policies.models import PolicyVersion
from app.prompts.models import Prompt
from app.training.models import TrainingRound
from trainer import defaults as round_defaults

from . import formats
from .schemas import (
    Aggregate,
    CompletionRef,
    ExportFormat,
    ExportQuery,
    JudgmentFilters,
    JudgmentPage,
    JudgmentRead,
    PromptRef,
    SplitName,
)

# ---- pseudonyms and cursors -------------------------------------------------------


def pseudonym(*, secret: str, user_id: int) -> str:
    """A stable, keyed pseudonym for an annotator: the same in the list and every export, and not
    reversible without the app secret (unlike a plain hash of a small integer id)."""
    digest = hmac.new(secret.encode(), f"annotator:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"ann_{digest[:16]}"


def _cursor_mac(secret: str, last_id: int) -> str:
    return hmac.new(secret.encode(), f"judgments-cursor:{last_id}".encode(), hashlib.sha256).hexdigest()[:16]


def encode_cursor(*, secret: str, last_id: int) -> str:
    """An opaque cursor for "judgments after last_id", signed so clients cannot forge positions."""
    raw = f"{last_id}.{_cursor_mac(secret, last_id)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(*, secret: str, cursor: str) -> int:
    """The judgment id a cursor stands for; a 422 naming `cursor` if it was not issued by this server."""
    invalid = Unprocessable("Invalid cursor: pass next_cursor from a previous page unchanged.", loc=("query", "cursor"))
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    last_id, _, mac = raw.partition(".")
    if not last_id.isdigit() or len(last_id) > 18 or not hmac.compare_digest(mac, _cursor_mac(secret, int(last_id))):
        raise invalid
    return int(last_id)


class Pseudonyms(dict[int, str]):
    """pseudonym() memoized per user id (`names[user_id]`): an export meets the same few annotators many
    times, and a dict hit is the cheapest lookup there is."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def __missing__(self, user_id: int) -> str:
        name = self[user_id] = pseudonym(secret=self.secret, user_id=user_id)
        return name


# ---- training rounds as judgment-id ranges ----------------------------------------------------------


@dataclass(frozen=True)
class RoundRanges:
    """Each round with a snapshot covers the judgment ids (previous round's bound, its own bound]."""

    ranges: dict[int, tuple[int, int]]  # round id -> (exclusive low, inclusive high)
    highs: list[int]  # the non-empty ranges' high bounds, ascending ...
    round_ids: list[int]  # ... and their rounds

    @classmethod
    def load(cls, *, db: Session) -> RoundRanges:
        # The WHERE leaves only rounds with a bound, which the column's type (int | None) cannot say.
        rows = typing.cast(
            Sequence[tuple[int, int]],
            db.execute(
                select(TrainingRound.id, TrainingRound.snapshot_max_judgment_id)
                .where(TrainingRound.snapshot_max_judgment_id.is_not(None))
                .order_by(TrainingRound.id)
            ).all(),
        )
        ranges: dict[int, tuple[int, int]] = {}
        low = 0
        for round_id, bound in rows:
            ranges[round_id] = (low, bound)
            low = max(low, bound)
        nonempty = sorted((high, rid) for rid, (lo, high) in ranges.items() if high > lo)
        return cls(ranges, [h for h, _ in nonempty], [r for _, r in nonempty])

    def round_of(self, judgment_id: int) -> int | None:
        """The round whose snapshot first included this judgment; None while no round has."""
        index = bisect.bisect_left(self.highs, judgment_id)
        return self.round_ids[index] if index < len(self.round_ids) else None


# ---- filters ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedFilters:
    """JudgmentFilters checked against the database and turned into ids the query can use."""

    since: datetime | None = None
    until: datetime | None = None
    id_low: int | None = None  # exclusive
    id_high: int | None = None  # inclusive
    policy_version: int | None = None
    prompt_id: int | None = None
    annotator_id: int | None = None
    choices: tuple[Choice, ...] = ()
    gold: bool | None = None
    active_annotators_only: bool = False


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def resolve_filters(
    *,
    db: Session,
    filters: JudgmentFilters,
    secret: str,
    rounds: RoundRanges,
    active_annotators_only: bool = False,
) -> ResolvedFilters:
    """Validate the filters (unknown round, version or annotator: 422 naming it)."""
    since, until = _utc(filters.since), _utc(filters.until)
    if since and until and until <= since:
        raise Unprocessable("'until' must be later than 'since'.", loc=("query", "until"))
    id_low = id_high = None
    if filters.round is not None:
        if filters.round not in rounds.ranges:
            exists = db.get(TrainingRound, filters.round) is not None
            raise Unprocessable(
                f"Round {filters.round} has no snapshot yet." if exists else f"Round {filters.round} does not exist.",
                loc=("query", "round"),
            )
        id_low, id_high = rounds.ranges[filters.round]
    if (
        filters.policy_version is not None
        and db.scalar(select(PolicyVersion.id).where(PolicyVersion.number == filters.policy_version)) is None
    ):
        raise Unprocessable(f"Policy version {filters.policy_version} does not exist.", loc=("query", "policy_version"))
    if filters.prompt is not None and db.get(Prompt, filters.prompt) is None:
        raise Unprocessable(f"Prompt {filters.prompt} does not exist.", loc=("query", "prompt"))
    annotator_id = None
    if filters.annotator is not None:
        annotator_id = next(
            (uid for uid in db.scalars(select(User.id)) if pseudonym(secret=secret, user_id=uid) == filters.annotator),
            None,
        )
        if annotator_id is None:
            raise Unprocessable(f"No annotator has the id '{filters.annotator}'.", loc=("query", "annotator"))
    return ResolvedFilters(
        since,
        until,
        id_low,
        id_high,
        filters.policy_version,
        filters.prompt,
        annotator_id,
        tuple(filters.choice),
        filters.gold,
        active_annotators_only,
    )


# ---- the one joined query ---------------------------------------------------------------------------

_completion_a, _completion_b = (
    aliased(Completion, name="completion_a"),
    aliased(Completion, name="completion_b"),
)
_version_a, _version_b = aliased(PolicyVersion, name="version_a"), aliased(PolicyVersion, name="version_b")


class Record(NamedTuple):
    """One judgment with everything a list item or an export row needs.

    A plain named tuple: reading a field is ~50x cheaper than a SQLAlchemy Row's attribute lookup, which
    matters at ~20 fields x 100,000 rows per export."""

    id: int
    comparison_id: int
    annotator_id: int
    choice: str  # a Choice's value
    strength: int | None
    rationale: str
    shown_left: str
    time_spent_ms: int | None
    client_time_spent_ms: int | None
    channel: str
    created_at: datetime | str  # as stored: text on SQLite (see formats.naive_utc)
    prompt_id: int
    completion_a_id: int
    completion_b_id: int
    is_gold: bool
    gold_choice: str | None  # a Choice's value
    content_hash: str
    messages_json: str
    a_text: str
    a_version: int
    a_tokens: int
    a_finish: str
    b_text: str
    b_version: int
    b_tokens: int
    b_finish: str


# Where each of Record's fields is read from.
_COLUMNS: dict[str, SQLColumnExpression[Any]] = {
    "id": Judgment.id,
    "comparison_id": Judgment.comparison_id,
    "annotator_id": Judgment.annotator_id,
    # Choices and times read raw (plain strings; SQLite's text time is parsed by formats.naive_utc), not
    # through the column types' converters: those would run for every row of every export.
    "choice": type_coerce(Judgment.choice, String),
    "strength": Judgment.strength,
    "rationale": Judgment.rationale,
    "shown_left": Judgment.shown_left,
    "time_spent_ms": Judgment.time_spent_ms,
    "client_time_spent_ms": Judgment.client_time_spent_ms,
    "channel": Judgment.channel,
    "created_at": type_coerce(Judgment.created_at, String),
    "prompt_id": Comparison.prompt_id,
    "completion_a_id": Comparison.completion_a_id,
    "completion_b_id": Comparison.completion_b_id,
    "is_gold": Comparison.is_gold,
    "gold_choice": type_coerce(Comparison.gold_choice, String),
    "content_hash": Prompt.content_hash,
    # The JSON text itself, decoded once per row by the reader (orjson) rather than by the column type.
    "messages_json": cast(Prompt.messages, Text),
    "a_text": _completion_a.text,
    "a_version": _version_a.number,
    "a_tokens": _completion_a.token_count,
    "a_finish": _completion_a.finish_reason,
    "b_text": _completion_b.text,
    "b_version": _version_b.number,
    "b_tokens": _completion_b.token_count,
    "b_finish": _completion_b.finish_reason,
}
# In Record's field order (a field without a column fails here, at import).
_SELECTED: list[Label[Any]] = [_COLUMNS[name].label(name) for name in Record._fields]


def _joined() -> Select[*tuple[Any, ...]]:
    return (
        select(*_SELECTED)
        .join(Comparison, Comparison.id == Judgment.comparison_id)
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .join(_completion_a, _completion_a.id == Comparison.completion_a_id)
        .join(_version_a, _version_a.id == _completion_a.policy_version_id)
        .join(_completion_b, _completion_b.id == Comparison.completion_b_id)
        .join(_version_b, _version_b.id == _completion_b.policy_version_id)
    )


def _filtered(stmt: Select[*tuple[Any, ...]], f: ResolvedFilters) -> Select[*tuple[Any, ...]]:
    if f.since is not None:
        stmt = stmt.where(Judgment.created_at >= f.since)
    if f.until is not None:
        stmt = stmt.where(Judgment.created_at < f.until)
    if f.id_low is not None:
        stmt = stmt.where(Judgment.id > f.id_low)
    if f.id_high is not None:
        stmt = stmt.where(Judgment.id <= f.id_high)
    if f.policy_version is not None:
        stmt = stmt.where(or_(_version_a.number == f.policy_version, _version_b.number == f.policy_version))
    if f.prompt_id is not None:
        stmt = stmt.where(Comparison.prompt_id == f.prompt_id)
    if f.annotator_id is not None:
        stmt = stmt.where(Judgment.annotator_id == f.annotator_id)
    if f.choices:
        stmt = stmt.where(Judgment.choice.in_(f.choices))
    if f.gold is not None:
        stmt = stmt.where(Comparison.is_gold.is_(f.gold))
    if f.active_annotators_only:
        stmt = stmt.join(User, User.id == Judgment.annotator_id).where(
            User.is_active.is_(True), User.excluded_from_training.is_(False)
        )
    return stmt


def _counted(columns: Sequence[Any], f: ResolvedFilters) -> Select[*tuple[Any, ...]]:
    """`columns` over the judgments that match, joined only to the tables the filters read: every join of
    _joined follows a non-null foreign key, so leaving one out changes no count, and counting 100,000
    judgments through all five costs ~4x as much."""
    stmt = select(*columns).select_from(Judgment)
    if f.policy_version is not None or f.prompt_id is not None or f.gold is not None:
        stmt = stmt.join(Comparison, Comparison.id == Judgment.comparison_id)
    if f.policy_version is not None:
        stmt = (
            stmt.join(_completion_a, _completion_a.id == Comparison.completion_a_id)
            .join(_version_a, _version_a.id == _completion_a.policy_version_id)
            .join(_completion_b, _completion_b.id == Comparison.completion_b_id)
            .join(_version_b, _version_b.id == _completion_b.policy_version_id)
        )
    return _filtered(stmt, f)


def count_judgments(*, db: Session, filters: ResolvedFilters, max_id: int | None = None) -> int:
    """How many judgments match (the CLI's progress total)."""
    stmt = _counted([func.count()], filters)
    if max_id is not None:
        stmt = stmt.where(Judgment.id <= max_id)
    return db.scalar(stmt) or 0


def choice_counts(*, db: Session, filters: ResolvedFilters) -> dict[str, int]:
    """How many matching judgments there are of each choice (a, b, tie, both_bad), zeros included."""
    stmt = _counted([Judgment.choice, func.count()], filters).group_by(Judgment.choice)
    counts = {choice.value: 0 for choice in Choice}
    counts.update({choice.value: n for choice, n in db.execute(stmt).all()})
    return counts


def count_matching(*, db: Session, filters: JudgmentFilters, secret: str) -> dict[str, int]:
    """choice_counts for filters as a client gives them (checked as list_judgments checks them)."""
    resolved = resolve_filters(db=db, filters=filters, secret=secret, rounds=RoundRanges.load(db=db))
    return choice_counts(db=db, filters=resolved)


def expected_rows(query: ExportQuery, counts: dict[str, int]) -> int | None:
    """How many rows an export of judgments with these choice counts writes, when that follows from the
    counts alone; None when it depends on the rows themselves (majority per comparison, a split)."""
    if query.aggregate != Aggregate.none or query.split != SplitName.all:
        return None
    if query.format == ExportFormat.raw:
        return sum(counts.values())
    decisive = counts[Choice.a.value] + counts[Choice.b.value]
    if query.format == ExportFormat.kto:  # two unpaired rows per pair; a tie never becomes KTO rows
        return 2 * (decisive + (counts[Choice.both_bad.value] if query.include_ties else 0))
    ties = counts[Choice.tie.value] + counts[Choice.both_bad.value]
    return decisive + (ties if query.include_ties else 0)


def annotator_names(*, db: Session, secret: str) -> dict[str, str]:
    """Every account's pseudonymous annotator id and its username, for pages only admins see."""
    return {pseudonym(secret=secret, user_id=uid): name for uid, name in db.execute(select(User.id, User.username))}


def pseudonym_of(*, db: Session, secret: str, username: str) -> str:
    """The pseudonymous annotator id of a username (the console filters by name, lists and exports by id)."""
    user_id = db.scalar(select(User.id).where(User.username == username))
    if user_id is None:
        raise Unprocessable(f"No annotator is named '{username}'.", loc=("query", "annotator"))
    return pseudonym(secret=secret, user_id=user_id)


# ---- the raw list ---------------------------------------------------------------------------------------


def _read(row: Record, *, annotator: str, round_id: int | None) -> JudgmentRead:
    return JudgmentRead(
        id=row.id,
        comparison_id=row.comparison_id,
        prompt=PromptRef(id=row.prompt_id, messages=orjson.loads(row.messages_json)),
        completion_a=CompletionRef(
            id=row.completion_a_id,
            text=row.a_text,
            policy_version=row.a_version,
            token_count=row.a_tokens,
            finish_reason=row.a_finish,
        ),
        completion_b=CompletionRef(
            id=row.completion_b_id,
            text=row.b_text,
            policy_version=row.b_version,
            token_count=row.b_tokens,
            finish_reason=row.b_finish,
        ),
        choice=row.choice,
        strength=row.strength,
        rationale=row.rationale,
        shown_left=row.shown_left,
        annotator=annotator,
        time_spent_ms=row.time_spent_ms,
        client_time_spent_ms=row.client_time_spent_ms,
        channel=row.channel,
        created_at=formats.iso(formats.naive_utc(row.created_at)),
        round_id=round_id,
        is_gold=row.is_gold,
        gold_choice=row.gold_choice,
    )


def list_judgments(
    *,
    db: Session,
    filters: JudgmentFilters,
    cursor: str | None,
    limit: int,
    secret: str,
    newest_first: bool = False,
) -> JudgmentPage:
    """One page of judgments in id order (or newest first, as the console lists them), after the
    cursor's position."""
    after = decode_cursor(secret=secret, cursor=cursor) if cursor is not None else None
    rounds = RoundRanges.load(db=db)
    resolved = resolve_filters(db=db, filters=filters, secret=secret, rounds=rounds)
    stmt = _filtered(_joined(), resolved)
    if newest_first:
        stmt = stmt.where(Judgment.id < after) if after is not None else stmt
        stmt = stmt.order_by(Judgment.id.desc()).limit(limit + 1)
    else:
        stmt = stmt.where(Judgment.id > (after or 0)).order_by(Judgment.id).limit(limit + 1)
    rows = [Record._make(row) for row in db.execute(stmt)]
    names = Pseudonyms(secret)
    items = [_read(r, annotator=names[r.annotator_id], round_id=rounds.round_of(r.id)) for r in rows[:limit]]
    next_cursor = encode_cursor(secret=secret, last_id=items[-1].id) if len(rows) > limit else None
    return JudgmentPage(items=items, next_cursor=next_cursor)


# ---- exports --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportPlan:
    """A validated export request: what to read, how to shape it, and the id bound fixed at its start."""

    query: ExportQuery
    filters: ResolvedFilters
    rounds: RoundRanges
    secret: str
    test_fraction: float
    max_judgment_id: int
    batch_size: int

    @property
    def by_comparison(self) -> bool:
        return self.query.aggregate == Aggregate.majority


def plan_export(
    *, db: Session, query: ExportQuery, secret: str, default_test_fraction: float | None, batch_size: int
) -> ExportPlan:
    """Check an export request before any byte is streamed (bad input is a 4xx, never a cut-off file)."""
    if query.format == ExportFormat.raw and query.aggregate != Aggregate.none:
        raise Unprocessable(
            "format=raw has one row per judgment; aggregate applies to trl, hh and kto.",
            loc=("query", "aggregate"),
        )
    if query.split != SplitName.all and query.test_fraction in (0.0, 1.0):
        empty = "test" if query.test_fraction == 0.0 else "train"
        if query.split.value == empty:
            raise Unprocessable(
                f"test_fraction={query.test_fraction} leaves the {empty} split empty.",
                loc=("query", "test_fraction"),
            )
    rounds = RoundRanges.load(db=db)
    filters = resolve_filters(
        db=db,
        filters=query,
        secret=secret,
        rounds=rounds,
        active_annotators_only=not query.include_inactive_annotators,
    )
    max_id = db.scalar(select(func.max(Judgment.id))) or 0
    if query.test_fraction is not None:
        fraction = query.test_fraction
    elif default_test_fraction is not None:
        fraction = default_test_fraction
    else:
        # Rounds derive their held-out share (at most this) from the data; the hash split nests, so this test
        # split holds out every prompt any round held out.
        fraction = round_defaults.HELDOUT_RANGE[1]
    return ExportPlan(query, filters, rounds, secret, fraction, max_id, batch_size)


def iter_record_batches(*, db: Session, plan: ExportPlan) -> Iterator[list[Record]]:
    """The matching joined rows in keyset-paginated batches: by id, or by (comparison, id) when rows
    are aggregated per comparison, so each comparison's judgments arrive together."""
    order = (Judgment.comparison_id, Judgment.id) if plan.by_comparison else (Judgment.id,)
    # The position is a bound parameter, not a literal of a new statement per page: the statement is
    # compiled once and every page reuses it (ids start at 1, so the first page is "after zeros").
    after = tuple(bindparam(f"after_{i}", type_=Integer) for i in range(len(order)))
    page = (
        _filtered(_joined(), plan.filters)
        .where(Judgment.id <= plan.max_judgment_id, tuple_(*order) > tuple_(*after))
        .order_by(*order)
        .limit(plan.batch_size)
    )
    connection = db.connection()  # Core rows: no ORM bookkeeping
    position = (0,) * len(order)
    while True:
        bound = {param.key: value for param, value in zip(after, position, strict=True)}
        rows = list(map(Record._make, connection.execute(page, bound).all()))
        if not rows:
            return
        yield rows
        if len(rows) < plan.batch_size:
            return
        last = rows[-1]
        position = (last.comparison_id, last.id) if plan.by_comparison else (last.id,)


def export_chunks(
    *,
    database: Database,
    plan: ExportPlan,
    on_progress: Callable[[int], None] | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The export file as a stream of byte chunks, one per batch; opens (and closes) its own session.

    on_progress receives the number of judgments read after each batch (the CLI's progress bar);
    on_rows the number of rows written, which differs where a format drops or merges judgments
    (ties left out, aggregation).
    """
    builder = formats.RowBuilder(
        plan.query,
        pseudonyms=Pseudonyms(plan.secret),
        round_of=plan.rounds.round_of,
        test_fraction=plan.test_fraction,
    )
    encoder = formats.encoder_for(plan.query)

    def encode(rows: list[formats.Row]) -> bytes:
        if on_rows is not None:
            on_rows(len(rows))
        return encoder.encode(rows)

    with database.session() as db:
        for records in iter_record_batches(db=db, plan=plan):
            step = encoder.slice_rows or len(records)
            chunk = b"".join(
                encode(builder.feed(records[start : start + step])) for start in range(0, len(records), step)
            )
            if chunk:
                yield chunk
            if on_progress is not None:
                on_progress(len(records))
    last_rows = builder.finish()
    if on_rows is not None:
        on_rows(len(last_rows))
    yield encoder.finish(last_rows)


def filename_for(query: ExportQuery, *, at: datetime) -> str:
    split = "" if query.split == SplitName.all else f"-{query.split.value}"
    return f"prefloop-{query.format.value}{split}-{at.strftime('%Y%m%dT%H%M%SZ')}.{query.file_format.value}"
