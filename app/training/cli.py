"""`prefloop worker` and `prefloop rounds launch|list|show|cancel|retry`."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from app.core.config import get_settings
from app.core.db import Database, utcnow
from app.core.errors import DomainError
from app.training import service
from app.training.executors import LocalExecutor
from app.training.models import RoundStatus
from app.training.plan import RoundPlan, plan_round
from app.training.schemas import RoundRead
from app.training.worker import Worker, exit_with_parent

rounds_cli = typer.Typer(help="Training rounds: launch, watch, cancel, retry.", no_args_is_help=True)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def worker_command(
    once: bool = typer.Option(False, "--once", help="Run one pass (and the round it claims), then exit."),
    poll_s: float = typer.Option(None, "--poll-s", help="Seconds between looks for queued rounds (WORKER_POLL_S)."),
    parent_pid: int = typer.Option(None, "--parent-pid", hidden=True, help="Exit when this process dies."),
) -> None:
    """Run training rounds: claim queued (and scheduled) rounds and run them one at a time until stopped."""
    if parent_pid:
        exit_with_parent(parent_pid)
    settings = get_settings()
    if poll_s is not None:
        settings.WORKER_POLL_S = poll_s
    stop = threading.Event()
    # SIGTERM/Ctrl-C: the running round checkpoints and goes back to the queue, then the worker exits.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    db = Database(settings.database_url)
    try:
        Worker(settings=settings, db=db, executor=LocalExecutor(), stop=stop).run(once=once)
    finally:
        db.dispose()


def _overrides(pairs: list[str], config_file: Path | None) -> dict:
    """--config FILE, then each --set a.b.c=VALUE (VALUE parsed as JSON, else taken as a string)."""
    overrides = json.loads(config_file.read_text()) if config_file else {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            _fail(f"--set takes key=value, got {pair!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        node = overrides
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return overrides


def _line(round_: RoundRead) -> str:
    progress = f"{round_.stage} {round_.step}/{round_.total_steps}" if round_.stage else ""
    made = f" -> policy v{round_.policy_number}" if round_.policy_number else ""
    return f"#{round_.id:<4} {round_.status.value:<10} {progress:<22} {round_.created_at:%Y-%m-%d %H:%M}{made}"


@rounds_cli.command("launch")
def rounds_launch(
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a setting, e.g. --set ppo.learning_rate=3e-5")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", exists=True, dir_okay=False, help="JSON file of overrides.")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print what the round would train on and every check it would fail; queue nothing."
        ),
    ] = False,
) -> None:
    """Queue a training round (a worker runs it); --dry-run shows its plan (exit 1: not possible yet)."""
    settings = get_settings()
    db = Database(settings.database_url)
    overrides = _overrides(set_ or [], config_file)
    try:
        with db.session() if dry_run else db.write_session() as session:  # a dry run only reads
            if dry_run:
                plan = plan_round(db=session, settings=settings, overrides=overrides)
                typer.echo(_plan_text(plan))
                raise typer.Exit(0 if plan.possible else 1)  # scripts can wait for a possible round
            round_id = service.launch(db=session, settings=settings, requested_by=None, config_overrides=overrides).id
    except DomainError as exc:
        _fail(exc.msg)
    finally:
        db.dispose()
    typer.echo(f"queued round {round_id}")


def _plan_text(plan: RoundPlan) -> str:
    c, data = plan.counts, plan.config.data
    size = f"{plan.num_parameters:,} parameters" if plan.num_parameters else "unknown size"
    lines = [
        f"usable judgments:   {c['strict']} preferring one answer, {c['ties']} ties or both-bad",
        f"reward-model pairs: {c['train_pairs']} train, {c['eval_pairs']} held out "
        f"({data.heldout_fraction:.0%} of prompts)",
        f"prompts:            {c['ppo_prompts']} for PPO, {c['eval_prompts']} held out for evaluation",
        f"policy:             {size}",
    ]
    if plan.derived:
        lines.append("derived defaults (an explicit --set wins):")
        lines += [f"  {path} = {d.value}  ({d.reason})" for path, d in plan.derived.items()]
    if plan.possible:
        lines.append("ready: the snapshot has enough data for a round")
    else:
        lines.append("not possible yet, the snapshot would fail:")
        lines += [f"  {s.what}: {s.there}, at least {s.needed} needed. {s.message}" for s in plan.shortfalls]
    return "\n".join(lines)


@rounds_cli.command("list")
def rounds_list(
    status: Annotated[RoundStatus | None, typer.Option(help="Only rounds in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
) -> None:
    """Recent rounds, newest first."""
    db = Database(get_settings().database_url)
    with db.session() as session:
        rounds, total = service.list_(db=session, status=status, limit=limit)
        lines = [_line(service.to_read(db=session, round_=r)) for r in rounds]
    db.dispose()
    typer.echo("\n".join(lines) if lines else "no rounds")
    if total > len(lines):
        typer.echo(f"... {total - len(lines)} more")


@rounds_cli.command("show")
def rounds_show(round_id: int) -> None:
    """Everything about one round, as JSON."""
    db = Database(get_settings().database_url)
    try:
        with db.session() as session:
            read = service.to_read(db=session, round_=service.get_or_raise(db=session, round_id=round_id))
    except DomainError as exc:
        _fail(exc.msg)
    finally:
        db.dispose()
    typer.echo(read.model_dump_json(indent=2))


@rounds_cli.command("cancel")
def rounds_cancel(round_id: int) -> None:
    """Cancel a queued round, or stop a running one (its worker kills the trainer within seconds)."""
    db = Database(get_settings().database_url)
    try:
        with db.write_session() as session:
            status = service.request_cancel(db=session, round_id=round_id, now=utcnow()).status
    except DomainError as exc:
        _fail(exc.msg)
    finally:
        db.dispose()
    typer.echo(
        f"round {round_id} cancelled"
        if status == RoundStatus.cancelled
        else f"round {round_id}: cancel requested; its worker stops it within seconds"
    )


@rounds_cli.command("retry")
def rounds_retry(round_id: int) -> None:
    """Queue a failed or cancelled round again (a failed one resumes after its last completed stage)."""
    db = Database(get_settings().database_url)
    try:
        with db.write_session() as session:
            service.retry(db=session, round_id=round_id)
    except DomainError as exc:
        _fail(exc.msg)
    finally:
        db.dispose()
    typer.echo(f"round {round_id} queued again")


def register(cli: typer.Typer) -> None:
    cli.command("worker")(worker_command)
    cli.add_typer(rounds_cli, name="rounds")
