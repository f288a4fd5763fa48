"""Shapes of prompts: one imported row (a JSONL line, a CSV row or an API item), an import request, the
list's filters, and what is read back."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.core.text import Text

MAX_TAGS = 20
MAX_TAG_LENGTH = 50
MAX_PROMPTS_PER_REQUEST = 10_000


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: Text = Field(min_length=1)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class PromptIn(BaseModel):
    """One prompt to import: plain text (`prompt`) or a conversation (`messages`) ending with a user turn
    the policy answers, with optional tags and source."""

    model_config = ConfigDict(extra="forbid")

    prompt: Text | None = None
    messages: list[Message] | None = None
    tags: list[Text] = Field(default_factory=list, max_length=MAX_TAGS)
    source: Text | None = Field(None, max_length=100)

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str]) -> list[str]:
        cleaned = list(dict.fromkeys(t.strip() for t in tags if t.strip()))
        too_long = [t for t in cleaned if len(t) > MAX_TAG_LENGTH]
        if too_long:
            raise ValueError(f"tags must be at most {MAX_TAG_LENGTH} characters: {too_long[0][:60]!r}")
        return cleaned

    @model_validator(mode="after")
    def _one_form(self) -> PromptIn:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give either 'prompt' (text) or 'messages' (a list of {role, content}), not both")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("'prompt' must not be blank")
        if self.messages is not None and (not self.messages or self.messages[-1].role != "user"):
            raise ValueError("'messages' must end with a user message: the policy writes the reply to it")
        return self

    def chat(self) -> list[dict]:
        """The prompt as chat messages, whitespace at both ends of each message trimmed."""
        if self.prompt is not None:
            return [{"role": "user", "content": self.prompt.strip()}]
        return [{"role": m.role, "content": m.content.strip()} for m in self.messages or []]


class PromptImport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompts: list[PromptIn] = Field(min_length=1, max_length=MAX_PROMPTS_PER_REQUEST)
    source: Text = Field("api", max_length=100, description="Recorded on each prompt that names no source.")


class PromptListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: Text | None = Field(None, max_length=500, description="Case-insensitive substring of the prompt text.")
    tag: Text | None = Field(None, max_length=50)
    source: Text | None = Field(None, max_length=100)
    active: bool | None = None
    offset: int = Field(0, ge=0, le=10**9)
    limit: int = Field(50, ge=1, le=1000)


class LineError(BaseModel):
    line: int = Field(description="1-based line (JSONL) or row (CSV, the header is line 1) of the file.")
    message: str


class ImportReport(BaseModel):
    created: int
    duplicates: int = Field(description="Rows whose prompt was already stored (or repeated in the file).")
    errors: list[LineError] = Field(default_factory=list, description="Rows left out (skip_bad_lines).")


class PromptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    messages: list[dict]
    text: str
    source: str
    tags: list[str]
    is_active: bool
    created_at: datetime


class PromptPage(BaseModel):
    items: list[PromptRead]
    total: int
