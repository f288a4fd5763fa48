"""`prefloop sampler`: the sampler as its own process (docker-compose runs it beside the web app)."""

from __future__ import annotations

import typer

from app.core.config import get_settings
from app.core.db import Database


def register(cli: typer.Typer) -> None:
    cli.command("sampler")(sampler)


def sampler(once: bool = typer.Option(False, "--once", help="Refill the pool once, then exit.")) -> None:
    """Keep the pool of ready comparisons filled with the active policy, until stopped (SIGTERM)."""
    from app.sampler.worker import SamplerWorker, run_process

    settings = get_settings()
    if not once:
        run_process(settings)
        return
    db = Database(settings.database_url)
    try:
        worker = SamplerWorker(settings, db)
        created = worker.run_once()
    finally:
        db.dispose()
    if worker.serving is None:
        typer.secho(
            f"error: no policy to sample with: {worker.last_error or 'no version is active'}",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"created {created} comparisons with policy version {worker.serving.number}")
