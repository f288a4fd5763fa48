"""`prefloop simulate`: scripted annotators judging pairs on a running server through its HTTP API."""

from __future__ import annotations

import asyncio

import typer
from tqdm import tqdm

from app.simulate import preferences
from app.simulate.runner import AnnotatorSpec, RunStats, annotator_names, provision, simulate


def register(cli: typer.Typer) -> None:
    cli.command("simulate")(simulate_command)


def simulate_command(
    url: str = typer.Option("http://127.0.0.1:8000", help="The prefloop server."),
    admin_token: str = typer.Option(
        ..., envvar="PREFLOOP_ADMIN_TOKEN", help="Creates the simulated accounts and their tokens."
    ),
    annotators: int = typer.Option(4, min=1, max=256),
    judgments: int = typer.Option(100, min=1, help="Stop after this many acknowledged judgments."),
    preference: str = typer.Option("overall", help=" | ".join([*preferences.SHIPPED, "module:function"])),
    noise: float = typer.Option(0.1, min=0.0, max=1.0, help="Share of random left/right answers."),
    tie_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of answers that are ties."),
    think_s: float = typer.Option(0.0, min=0.0, help="Seconds each annotator spends per pair."),
    timeout_s: float = typer.Option(None, help="Give up after this long."),
    seed: int = typer.Option(0),
) -> None:
    """Judge pairs with N scripted annotators, each with its own account and token."""
    try:
        preference_fn = preferences.load(preference)
    except ValueError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    names = annotator_names(preference, annotators)
    specs = [AnnotatorSpec(name, preference_fn, noise=noise, tie_rate=tie_rate, think_s=think_s) for name in names]

    async def run() -> RunStats:
        tokens = await provision(url, admin_token, names)
        with tqdm(total=judgments, unit="judgment", desc="simulate") as bar:
            return await simulate(
                url, tokens, specs, judgments, seed=seed, timeout_s=timeout_s, on_ack=lambda: bar.update(1)
            )

    try:
        stats = asyncio.run(run())
    except preferences.PreferenceError as exc:  # a judgment it could not reach is never sent
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"acknowledged {stats.acknowledged} judgments: {dict(stats.choices)}; "
        f"backoffs {dict(stats.backoffs)}; empty polls {stats.empty_polls}"
    )
