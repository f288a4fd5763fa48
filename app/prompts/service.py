"""Prompts: parsing import files, normalizing to chat messages, de-duplicating, listing, deactivating.

Import formats (UTF-8; a byte-order mark is fine):

* JSONL, one object per line: {"prompt": "text"} or {"messages": [{"role": "user", "content": "..."}]},
  each with optional "tags" (list of strings) and "source". Blank lines are ignored.
* CSV with a header row: a `prompt` column, optional `tags` ("a|b|c") and `source` columns; other
  columns are ignored.

Every prompt is stored as chat messages ending with a user turn; plain text becomes one user message.
Two prompts are the same when their normalized messages are (sha256 content hash), whatever their tags
or source, and the second one is counted as a duplicate, not stored.

For an upload in the REST API: `import_text(db=..., content=decode_upload(raw_bytes), fmt=detect_format(
filename, text), source=..., skip_bad_lines=..., max_chars=settings.PROMPT_MAX_CHARS)`; for a JSON body
of PromptIn items: `import_prompts(db=..., rows=items, source=..., max_chars=...)`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import unicodedata
from pathlib import PurePath

from pydantic import ValidationError
from sqlalchemy import ColumnElement, cast, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.comparisons import service as comparisons_service
from app.core.errors import NotFound, Unprocessable
from app.core.text import check_text
from app.prompts.models import Prompt
from app.prompts.schemas import ImportReport, LineError, PromptIn

FORMATS = ("jsonl", "csv")
# Errors listed in a refusal; the rest are counted so a huge broken file gives a readable message.
MAX_REPORTED_ERRORS = 20
INSERT_CHUNK = 1000


# --- parsing -----------------------------------------------------------------------------


def decode_upload(data: bytes) -> str:
    """Bytes of an uploaded file as text; only UTF-8 is accepted."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unprocessable(f"The file is not UTF-8 text (invalid byte at offset {exc.start}).", loc=("file",)) from exc


def upload_source(source: str | None, filename: str | None) -> str:
    """The source recorded on an uploaded file's prompts that name none: the one given, else the file's name.
    The name comes from the multipart header, outside any Text field, so it is checked here."""
    name = (source or "").strip() or filename or "upload"
    try:
        return check_text(name)
    except ValueError as exc:  # only the file name can be bad: `source` is a Text parameter
        raise Unprocessable(f"The file name {exc}; rename the file or give a source.", loc=("file",)) from exc


def detect_format(filename: str | None, content: str) -> str:
    """jsonl or csv, from the file name's extension, else from the first character."""
    suffix = PurePath(filename or "").suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    return "jsonl" if content.lstrip("\ufeff \t\r\n").startswith(("{", "[")) else "csv"


def parse(content: str, fmt: str) -> tuple[list[tuple[int, PromptIn]], list[LineError]]:
    """Rows with their line numbers, and the lines that could not be read."""
    if fmt not in FORMATS:
        raise Unprocessable(f"Unknown prompt file format {fmt!r}; use jsonl or csv.", loc=("format",))
    content = content.removeprefix("\ufeff")
    return _parse_jsonl(content) if fmt == "jsonl" else _parse_csv(content)


def _parse_jsonl(content: str) -> tuple[list[tuple[int, PromptIn]], list[LineError]]:
    rows: list[tuple[int, PromptIn]] = []
    errors: list[LineError] = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            errors.append(LineError(line=number, message=f"not valid JSON ({exc})"))
            continue
        if not isinstance(value, dict):
            errors.append(
                LineError(
                    line=number,
                    message="expected one JSON object per line (JSONL), got "
                    f"{type(value).__name__.replace('dict', 'object')}",
                )
            )
            continue
        _validate(number, value, rows, errors)
    return rows, errors


def _parse_csv(content: str) -> tuple[list[tuple[int, PromptIn]], list[LineError]]:
    reader = csv.reader(io.StringIO(content, newline=""), strict=True)
    rows: list[tuple[int, PromptIn]] = []
    errors: list[LineError] = []
    try:
        header = [name.strip().lower() for name in next(reader, [])]
    except csv.Error as exc:
        return [], [LineError(line=1, message=f"unreadable CSV header ({exc})")]
    if not header:
        return [], []
    if "prompt" not in header:
        found = ", ".join(header)
        return [], [LineError(line=1, message=f"the CSV header has no 'prompt' column (found: {found})")]
    line = reader.line_num + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(LineError(line=line, message=f"unreadable CSV ({exc})"))
            break  # the reader cannot resynchronize after a broken quote
        if any(f.strip() for f in fields):
            if len(fields) != len(header):
                message = f"has {len(fields)} fields, the header has {len(header)}"
                errors.append(LineError(line=line, message=message))
            else:
                record = dict(zip(header, fields, strict=True))
                value = {"prompt": record["prompt"], "tags": record.get("tags", "").split("|")}
                if record.get("source", "").strip():
                    value["source"] = record["source"].strip()
                _validate(line, value, rows, errors)
        line = reader.line_num + 1
    return rows, errors


def _validate(line: int, value: dict, rows: list, errors: list) -> None:
    try:
        rows.append((line, PromptIn.model_validate(value)))
    except ValidationError as exc:
        problems = "; ".join(
            (".".join(str(p) for p in e["loc"]) + ": " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        errors.append(LineError(line=line, message=problems))


# --- normalizing and storing -------------------------------------------------------------


def normalize(row: PromptIn) -> list[dict]:
    """Chat messages with Unicode NFC and Unix newlines, so equal-looking prompts hash equal."""
    return [
        {"role": m["role"], "content": unicodedata.normalize("NFC", m["content"].replace("\r\n", "\n"))}
        for m in row.chat()
    ]


def content_hash(messages: list[dict]) -> str:
    canonical = json.dumps(messages, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def flatten(messages: list[dict]) -> str:
    """Searchable, displayable text: the message itself for one user turn, else role-labelled turns."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def import_text(
    *, db: Session, content: str, fmt: str, source: str, skip_bad_lines: bool, max_chars: int
) -> ImportReport:
    """Parse a JSONL or CSV file and import its prompts. A bad line refuses the whole file (with every
    bad line number) unless skip_bad_lines, which imports the good lines and reports the bad ones."""
    rows, errors = parse(content, fmt)
    good = []
    for line, row in rows:
        problem = _length_problem(row, max_chars)
        if problem:
            errors.append(LineError(line=line, message=problem))
        else:
            good.append(row)
    errors.sort(key=lambda e: e.line)
    if errors and not (skip_bad_lines and good):
        listed = "; ".join(f"line {e.line}: {e.message}" for e in errors[:MAX_REPORTED_ERRORS])
        more = f" (and {len(errors) - MAX_REPORTED_ERRORS} more)" if len(errors) > MAX_REPORTED_ERRORS else ""
        advice = "" if skip_bad_lines else "; nothing was imported (skip bad lines to import the good ones)"
        count = f"{len(errors)} bad line{'s' if len(errors) > 1 else ''}"
        raise Unprocessable(f"{count} in the file: {listed}{more}{advice}.", loc=("file",))
    if not good:
        raise Unprocessable("The file has no prompts.", loc=("file",))
    report = import_prompts(db=db, rows=good, source=source, max_chars=max_chars)
    return report.model_copy(update={"errors": errors})


def import_prompts(*, db: Session, rows: list[PromptIn], source: str, max_chars: int) -> ImportReport:
    """Store new prompts, counting those already stored (or repeated here) as duplicates. `source`
    applies to rows that do not name their own. Safe against a concurrent import of the same prompts."""
    for index, row in enumerate(rows):
        problem = _length_problem(row, max_chars)
        if problem:
            raise Unprocessable(problem, loc=("rows", index))
    values: dict[str, dict] = {}
    for row in rows:
        messages = normalize(row)
        values.setdefault(
            content_hash(messages),
            {
                "messages": messages,
                "text": flatten(messages),
                "source": (row.source or source)[:100],
                "tags": row.tags,
                "content_hash": content_hash(messages),
                "is_active": True,
            },
        )
    unique = list(values.values())
    created = 0
    for start in range(0, len(unique), INSERT_CHUNK):
        chunk = unique[start : start + INSERT_CHUNK]
        created += len(db.scalars(_insert_new(db).returning(Prompt.id), chunk).all())
    db.flush()
    return ImportReport(created=created, duplicates=len(rows) - created)


def _length_problem(row: PromptIn, max_chars: int) -> str | None:
    length = sum(len(m["content"]) for m in row.chat())
    if length <= max_chars:
        return None
    return f"the prompt has {length} characters; at most {max_chars} are allowed"


def _insert_new(db: Session):
    # INSERT ... ON CONFLICT DO NOTHING on the content hash: a prompt stored meanwhile by another
    # import is skipped (and counted as a duplicate) instead of failing the whole import.
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(Prompt).on_conflict_do_nothing(index_elements=[Prompt.content_hash])


# --- reading and deactivating ------------------------------------------------------------


def get_or_raise(*, db: Session, prompt_id: int) -> Prompt:
    prompt = db.get(Prompt, prompt_id)
    if prompt is None:
        raise NotFound(f"Prompt {prompt_id} does not exist.", loc=("path", "prompt_id"))
    return prompt


def list_(
    *,
    db: Session,
    q: str | None = None,
    tag: str | None = None,
    source: str | None = None,
    active: bool | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Prompt], int]:
    """A page of prompts, newest first, and the total matching: `q` searches the text (case-insensitive
    substring), `tag` and `source` match exactly, `active` filters on the active flag."""
    conditions: list[ColumnElement[bool]] = []
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(Prompt.text.ilike(f"%{escaped}%", escape="\\"))
    if tag:
        conditions.append(_has_tag(db, tag))
    if source is not None:
        conditions.append(Prompt.source == source)
    if active is not None:
        conditions.append(Prompt.is_active.is_(active))
    total = db.scalar(select(func.count()).select_from(Prompt).where(*conditions)) or 0
    page = select(Prompt).where(*conditions).order_by(Prompt.id.desc()).offset(offset).limit(limit)
    return list(db.scalars(page)), total


def _has_tag(db: Session, tag: str) -> ColumnElement[bool]:
    if db.get_bind().dialect.name == "postgresql":
        return cast(Prompt.tags, postgresql.JSONB).contains([tag])
    each = func.json_each(Prompt.tags).table_valued("value")
    return exists(select(1).select_from(each).where(each.c.value == tag))


def count_active(*, db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Prompt).where(Prompt.is_active.is_(True))) or 0


def deactivate(*, db: Session, prompt_id: int) -> Prompt:
    """Stop sampling a prompt and retire its ready pairs; its judgments are kept."""
    prompt = get_or_raise(db=db, prompt_id=prompt_id)
    prompt.is_active = False
    comparisons_service.retire_for_prompt(db=db, prompt_id=prompt_id)
    db.flush()
    return prompt


def reactivate(*, db: Session, prompt_id: int) -> Prompt:
    """Sample a deactivated prompt again."""
    prompt = get_or_raise(db=db, prompt_id=prompt_id)
    prompt.is_active = True
    db.flush()
    return prompt
