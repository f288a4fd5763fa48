"""`prefloop export --format trl --out FILE`: the same export as GET /api/v1/export, written to a file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from tqdm import tqdm

from app.comparisons.models import Choice
from app.core.config import get_settings
from app.core.db import Database
from app.core.errors import DomainError

from . import service
from .schemas import Aggregate, ExportFormat, ExportQuery, ExportStyle, FileFormat, SplitName


def register(cli: typer.Typer) -> None:
    cli.command("export")(export)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def export(
    out: Annotated[Path, typer.Option("--out", help="File to write; .parquet picks Parquet.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="trl, hh, raw or kto.")] = ExportFormat.trl,
    style: Annotated[ExportStyle, typer.Option(help="trl/kto: chat messages or plain strings.")] = (
        ExportStyle.conversational
    ),
    aggregate: Annotated[Aggregate, typer.Option(help="none: a row per judgment; majority: per pair.")] = (
        Aggregate.none
    ),
    include_ties: Annotated[bool, typer.Option(help="trl/hh/kto: keep ties and both-bad too.")] = False,
    include_inactive_annotators: Annotated[
        bool, typer.Option(help="Keep deactivated annotators and those excluded from training.")
    ] = False,
    split: Annotated[SplitName, typer.Option(help="Prompt-level split, stable across exports.")] = SplitName.all,
    test_fraction: Annotated[float | None, typer.Option(help="Share of prompts in the test split.")] = None,
    file_format: Annotated[FileFormat | None, typer.Option(help="By default from the --out extension.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO time: judgments created at or after it.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time: judgments created before it.")] = None,
    round_id: Annotated[int | None, typer.Option("--round", help="Training round id.")] = None,
    policy_version: Annotated[int | None, typer.Option(help="Policy version number of either completion.")] = None,
    prompt: Annotated[int | None, typer.Option(help="Prompt id: the judgments of its pairs.")] = None,
    annotator: Annotated[str | None, typer.Option(help="Pseudonymous annotator id.")] = None,
    choice: Annotated[list[Choice] | None, typer.Option(help="Keep only this choice (repeatable).")] = None,
    gold: Annotated[bool | None, typer.Option("--gold/--no-gold", help="Only, or no, gold pairs.")] = None,
) -> None:
    """Export preference data (TRL, HH-RLHF, raw battles, KTO) to a file, with a progress bar."""
    try:
        query = ExportQuery.model_validate(
            {
                "format": fmt,
                "style": style,
                "aggregate": aggregate,
                "include_ties": include_ties,
                "include_inactive_annotators": include_inactive_annotators,
                "split": split,
                "test_fraction": test_fraction,
                "since": since,
                "until": until,
                "round": round_id,
                "policy_version": policy_version,
                "prompt": prompt,
                "annotator": annotator,
                "choice": choice or [],
                "gold": gold,
                "file_format": file_format or (FileFormat.parquet if out.suffix == ".parquet" else FileFormat.jsonl),
            }
        )
    except ValidationError as exc:
        _fail("; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors()))
    settings = get_settings()
    database = Database(settings.database_url)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with database.session() as db:
            plan = service.plan_export(
                db=db,
                query=query,
                secret=settings.secret_key,
                default_test_fraction=settings.TRAINING_HELDOUT_FRACTION,
                batch_size=settings.EXPORT_BATCH_SIZE,
            )
            total = service.count_judgments(db=db, filters=plan.filters, max_id=plan.max_judgment_id)
        rows_written = 0

        def count_rows(n: int) -> None:
            nonlocal rows_written
            rows_written += n

        with tqdm(total=total, unit="judgment", disable=None) as bar, partial.open("wb") as file:
            chunks = service.export_chunks(database=database, plan=plan, on_progress=bar.update, on_rows=count_rows)
            for chunk in chunks:
                file.write(chunk)
        os.replace(partial, out)  # a failed export leaves no half-written file under the real name
    except DomainError as exc:
        _fail(exc.msg)
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror}")
    finally:
        partial.unlink(missing_ok=True)
        database.dispose()
    # Formats that leave ties out or merge annotators' judgments write fewer rows than they read.
    typer.echo(f"read {total} judgments, wrote {rows_written} {query.format.value} rows to {out}")
