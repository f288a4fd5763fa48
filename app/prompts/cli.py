"""`prefloop prompts import FILE`: JSONL or CSV prompts into the database, de-duplicated."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.core.config import get_settings
from app.core.db import Database
from app.core.errors import DomainError
from app.core.migrations import upgrade_to_head
from app.prompts import service

prompts_cli = typer.Typer(help="Prompts the sampler writes completions for.", no_args_is_help=True)


def register(cli: typer.Typer) -> None:
    cli.add_typer(prompts_cli, name="prompts")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@prompts_cli.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help='JSONL ({"prompt": ...} or {"messages": [...]}) or CSV.')],
    source: str = typer.Option(None, help="Recorded on prompts that name none; defaults to the file name."),
    skip_bad_lines: bool = typer.Option(
        False, "--skip-bad-lines", help="Import the good lines of a file that has bad ones."
    ),
    fmt: str = typer.Option(None, "--format", help="jsonl or csv; by default from the extension or content."),
) -> None:
    """Import prompts. A file with a bad line is refused whole (every bad line is listed) unless
    --skip-bad-lines; prompts already stored are counted as duplicates."""
    settings = get_settings()
    try:
        data = file.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}")
    settings.make_data_dir()
    upgrade_to_head(settings.database_url)
    db = Database(settings.database_url)
    try:
        content = service.decode_upload(data)
        with db.session() as session:
            report = service.import_text(
                db=session,
                content=content,
                fmt=fmt or service.detect_format(file.name, content),
                source=source or file.name,
                skip_bad_lines=skip_bad_lines,
                max_chars=settings.PROMPT_MAX_CHARS,
            )
    except DomainError as exc:
        _fail(exc.msg)
    finally:
        db.dispose()
    for error in report.errors:
        typer.secho(f"skipped line {error.line}: {error.message}", fg=typer.colors.YELLOW, err=True)
    typer.echo(
        f"imported {report.created} prompts from {file} ({report.duplicates} duplicates, "
        f"{len(report.errors)} bad lines skipped)"
    )
