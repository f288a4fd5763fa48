"""Query parameters and response shapes of the raw-judgment list and the streamed export.

Query parameters are pydantic models with extra="forbid", so a misspelled filter (`?rond=3`) is a
422 naming it instead of being silently ignored and exporting everything.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.comparisons.models import Choice
from app.core.text import Text


class JudgmentFilters(BaseModel):
    """Which judgments a list page or an export covers; every filter is optional and they combine (AND)."""

    model_config = ConfigDict(extra="forbid")

    since: datetime | None = Field(None, description="Judgments created at or after this time (UTC if no offset).")
    until: datetime | None = Field(None, description="Judgments created before this time (UTC if no offset).")
    round: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="Training round id: the judgments its snapshot added (after the previous round's).",
    )
    policy_version: int | None = Field(
        None, ge=0, le=2**31 - 1, description="Policy version number that sampled either completion."
    )
    prompt: int | None = Field(None, ge=1, le=2**31 - 1, description="Prompt id: the judgments of its pairs.")
    annotator: Text | None = Field(
        None, min_length=1, max_length=64, description="Pseudonymous annotator id, as listed in judgments."
    )
    choice: list[Choice] = Field(default_factory=list, description="Keep only these choices (repeatable).")
    gold: bool | None = Field(None, description="true: gold (known-answer) pairs only; false: none of them.")


class JudgmentListQuery(JudgmentFilters):
    cursor: Text | None = Field(
        None,
        max_length=200,
        description="Opaque cursor from the previous page's next_cursor; omit for the first.",
    )
    limit: int = Field(100, ge=1, le=1000, description="Judgments per page.")


class ExportFormat(enum.StrEnum):
    trl = "trl"  # TRL preference rows: prompt / chosen / rejected
    hh = "hh"  # Anthropic HH-RLHF transcript strings: chosen / rejected
    raw = "raw"  # one row per judgment, ties and both-bad kept (Chatbot Arena battle rows)
    kto = "kto"  # unpaired rows: prompt / completion / label


class ExportStyle(enum.StrEnum):
    conversational = "conversational"  # chat-message lists (TRL applies the chat template)
    standard = "standard"  # plain strings


class Aggregate(enum.StrEnum):
    none = "none"  # one row (or pair) per judgment
    majority = "majority"  # one per comparison: the most frequent choice; an even split counts as a tie


class SplitName(enum.StrEnum):
    all = "all"
    train = "train"
    test = "test"


class FileFormat(enum.StrEnum):
    jsonl = "jsonl"
    parquet = "parquet"


class ExportOptions(BaseModel):
    """How an export is shaped: its layout, what it keeps, its file format (the filters come apart)."""

    format: ExportFormat = Field(ExportFormat.trl, description="Row layout: trl, hh, raw or kto.")
    style: ExportStyle = Field(
        ExportStyle.conversational, description="trl and kto: chat-message lists or plain strings."
    )
    aggregate: Aggregate = Field(
        Aggregate.none,
        description="Comparisons judged by several annotators: every judgment, or the majority.",
    )
    include_ties: bool = Field(
        False,
        description="trl/hh: also emit tie and both-bad judgments as pairs (chosen = completion a), marked "
        "by "
        "metadata.choice; kto: also emit both-bad as two label=false rows. raw always keeps them.",
    )
    include_inactive_annotators: bool = Field(
        False,
        description="Keep judgments by deactivated annotators and by annotators excluded from training.",
    )
    split: SplitName = Field(SplitName.all, description="Prompt-level split, stable across exports.")
    test_fraction: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Share of prompts in the test split; default PREFLOOP_TRAINING_HELDOUT_FRACTION, or when "
        "that is unset (rounds derive it) 0.2, the most a round holds out, so the test split holds every "
        "prompt a round held out.",
    )
    file_format: FileFormat = Field(FileFormat.jsonl, description="JSON Lines, or Parquet.")


class ExportQuery(ExportOptions, JudgmentFilters):
    model_config = ConfigDict(extra="forbid")


class ConsoleFilters(BaseModel):
    """JudgmentFilters as the console's judgments and export pages put them in the query string: an
    annotator by username, one choice, whole UTC days (both ends included), an empty field for no filter."""

    model_config = ConfigDict(extra="ignore")  # a stray parameter in a shared link is not worth an error

    annotator: Text = Field("", max_length=64, description="Username.")
    prompt: int | None = Field(None, ge=1, le=2**31 - 1)
    version: int | None = Field(None, ge=0, le=2**31 - 1)
    choice: Choice | None = None
    since: date | None = None
    until: date | None = Field(None, lt=date.max)  # the day after it must exist
    cursor: Text | None = Field(None, max_length=200)  # the judgments page's position in the list

    @field_validator("prompt", "version", "choice", "since", "until", "cursor", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    LABELS: ClassVar[dict[str, str]] = {
        "annotator": "Annotator",
        "prompt": "Prompt id",
        "version": "Policy version",
        "choice": "Choice",
        "since": "From",
        "until": "To",
        "cursor": "Page",
    }

    def filters(self, *, annotator_id: str | None) -> JudgmentFilters:
        """The export service's filters; annotator_id is the annotator's pseudonymous id."""
        return JudgmentFilters(
            annotator=annotator_id,
            prompt=self.prompt,
            policy_version=self.version,
            choice=[self.choice] if self.choice else [],
            since=datetime.combine(self.since, time(), UTC) if self.since else None,
            until=datetime.combine(self.until + timedelta(days=1), time(), UTC) if self.until else None,
        )

    def link(self, **changes: object) -> str:
        """The query string of these filters (only them) with `changes` applied, empty ones left out."""
        values = {**self.model_dump(include=set(ConsoleFilters.model_fields) - {"cursor"}), **changes}
        return urlencode({k: str(v) for k, v in values.items() if v not in (None, "")})


class ConsoleExportQuery(ExportOptions, ConsoleFilters):
    """The console's export form: ConsoleFilters and the export's options."""

    model_config = ConfigDict(extra="ignore")

    def export_query(self, *, annotator_id: str | None) -> ExportQuery:
        """The export the API would run for these filters and options."""
        options = self.model_dump(include=set(ExportOptions.model_fields))
        return ExportQuery.model_validate({**self.filters(annotator_id=annotator_id).model_dump(), **options})


class PromptRef(BaseModel):
    id: int
    messages: list[dict[str, Any]]


class CompletionRef(BaseModel):
    id: int
    text: str
    policy_version: int = Field(description="Number of the policy version that sampled it.")
    token_count: int
    finish_reason: str


class JudgmentRead(BaseModel):
    """One stored judgment with what a client needs to use it: the pair, the verdict, and its context."""

    id: int
    comparison_id: int
    prompt: PromptRef
    completion_a: CompletionRef
    completion_b: CompletionRef
    choice: Choice = Field(description="In completion terms (a, b, tie, both_bad), never screen side.")
    strength: int | None
    rationale: str
    shown_left: str = Field(description="Which completion ('a' or 'b') the annotator saw on the left.")
    annotator: str = Field(description="Pseudonymous annotator id (a keyed hash, stable across lists and exports).")
    time_spent_ms: int | None = Field(description="Measured by the server, from showing to submit.")
    client_time_spent_ms: int | None = Field(description="The client's own measure, when it sent one.")
    channel: str = Field(description="'browser' or 'api'.")
    created_at: datetime
    round_id: int | None = Field(description="The training round whose snapshot first included it.")
    is_gold: bool
    gold_choice: Choice | None


class JudgmentPage(BaseModel):
    items: list[JudgmentRead]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")
