"""`prefloop policy register|list|activate` and `prefloop bootstrap` (the embedded default policy)."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import typer

from app.core.config import Settings, get_settings
from app.core.db import Database, utcnow
from app.core.errors import DomainError
from app.core.migrations import upgrade_to_head
from app.policies import registry, service
from app.policies.models import PolicyStatus, PolicyVersion
from app.prompts import service as prompt_service
from app.rollout import service as rollout_service

policy_cli = typer.Typer(help="Policy versions in the model registry.", no_args_is_help=True)
EMBEDDED_SOURCE = "embedded"
DEMO_PROMPTS = 200


def register(cli: typer.Typer) -> None:
    cli.add_typer(policy_cli, name="policy")
    cli.command("bootstrap")(bootstrap)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _open(settings: Settings) -> Database:
    settings.make_data_dir()
    upgrade_to_head(settings.database_url)
    return Database(settings.database_url)


def _staging_dir(settings: Settings) -> Path:
    # Inside the registry, so publish moves instead of copying, and a crash leaves only a staging
    # directory that a later publish removes.
    path = settings.registry_dir / "policy" / f"{registry.STAGING_PREFIX}{uuid.uuid4().hex}"
    path.mkdir(parents=True)
    return path


def publish_base(
    settings: Settings,
    db: Database,
    *,
    source_dir: Path,
    source: str,
    activate: bool,
    metrics: dict[str, Any],
    move: bool,
) -> PolicyVersion:
    """Publish a model directory as a base version (no parent) and record it; active when asked or
    when no version is active yet."""
    with db.write_session() as session:
        number = service.next_policy_number(db=session, registry_dir=settings.registry_dir)
        manifest = {"parent": None, "round_id": None, "data_snapshot": None, "source": source, "metrics": metrics}
        path = registry.publish(
            registry_dir=settings.registry_dir,
            kind="policy",
            number=number,
            source_dir=source_dir,
            manifest=manifest,
            move=move,
        )
        active = activate or service.get_active(db=session) is None
        return service.record_policy_version(
            db=session,
            number=number,
            path=path,
            parent_id=None,
            source=source,
            metrics=metrics,
            status=PolicyStatus.active if active else PolicyStatus.candidate,
        )


@policy_cli.command("register")
def register_policy(
    path_or_id: str = typer.Argument(..., help="A local Hugging Face model directory or Hub id (org/name)."),
    activate: bool = typer.Option(False, "--activate", help="Make it the active version at once."),
) -> None:
    """Register an existing causal LM as a base policy version (copied into the registry).

    It is loaded once first, so a broken directory, weights that do not match the config or a tokenizer
    without a pad token are refused here rather than in the sampler. The first version becomes active.
    """
    from trainer import generate
    from trainer.models import ModelLoadError

    settings = get_settings()
    local = Path(path_or_id).expanduser()
    is_local = local.exists() or path_or_id.startswith((".", "/", "~")) or path_or_id.count("/") > 1
    db = _open(settings)
    try:
        if is_local:
            registry.validate_model_dir(local)
            generate.load_policy(str(local))
            version = publish_base(
                settings, db, source_dir=local, source=str(local.resolve()), activate=activate, metrics={}, move=False
            )
        else:
            loaded = generate.load_policy(path_or_id, dtype="auto")
            staging = _staging_dir(settings)
            try:
                generate.save_policy(loaded, str(staging))
                version = publish_base(
                    settings, db, source_dir=staging, source=path_or_id, activate=activate, metrics={}, move=True
                )
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except DomainError as exc:
        _fail(exc.msg)
    except (ModelLoadError, OSError) as exc:
        _fail(str(exc))
    finally:
        db.dispose()
    typer.echo(f"registered {path_or_id} as policy version {version.number} ({version.status.value})")


@policy_cli.command("list")
def list_policies() -> None:
    """Every policy version, newest first."""
    db = _open(get_settings())
    with db.session() as session:
        versions = service.list_versions(db=session)
        lines = [
            f"{v.number:>5}  {v.status.value:<9}  {v.parent.number if v.parent else '-':>6}  "
            f"{v.created_at:%Y-%m-%d %H:%M}  {v.source}"
            for v in versions
        ]
    db.dispose()
    if not lines:
        typer.echo("no policy versions yet; run `prefloop bootstrap` or `prefloop policy register PATH`")
        return
    typer.echo(f"{'ver':>5}  {'status':<9}  {'parent':>6}  {'created':<16}  source")
    typer.echo("\n".join(lines))


@policy_cli.command("activate")
def activate_policy(number: int = typer.Argument(..., help="The version number to make active.")) -> None:
    """Make version NUMBER active (an earlier one: a rollback); the sampler switches without a restart. A
    running rollout ends, decided by admin."""
    db = _open(get_settings())
    try:
        with db.write_session() as session:
            version = service.get_by_number_or_raise(db=session, number=number)
            rollout_service.activate(db=session, version_id=version.id, admin=None, now=utcnow())
    except DomainError as exc:
        _fail(exc.msg)
    finally:
        db.dispose()
    typer.echo(f"policy version {number} is active")


def bootstrap(
    preset: str = typer.Option("default", help="default (~3.6M parameters, minutes) or test (seconds)."),
    seed: int = typer.Option(0, help="Same preset and seed give the same policy."),
) -> None:
    """Build the embedded default policy offline and import the demo prompts, unless a policy exists."""
    from trainer.embedded.build import PRESETS, build_policy, write_demo_prompts

    if preset not in PRESETS:
        _fail(f"unknown preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}")
    settings = get_settings()
    db = _open(settings)
    try:
        with db.session() as session:
            existing = service.get_active(db=session) or next(iter(service.list_versions(db=session)), None)
            embedded = existing is not None and existing.source.startswith(EMBEDDED_SOURCE)
            needs_prompts = prompt_service.count_active(db=session) == 0
        if existing is None:
            started = time.perf_counter()
            typer.echo(f"building the embedded policy (preset {preset}, seed {seed}); this runs once")
            staging = _staging_dir(settings)
            try:
                metrics = build_policy(staging, preset=preset, seed=seed, progress=True)
                summary = {k: v for k, v in metrics.items() if k != "config"}
                version = publish_base(
                    settings,
                    db,
                    source_dir=staging,
                    source=f"{EMBEDDED_SOURCE}:{preset}",
                    activate=True,
                    metrics=summary,
                    move=True,
                )
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            typer.echo(f"policy version {version.number} is active ({time.perf_counter() - started:.0f} s)")
        else:
            typer.echo(f"a policy exists (version {existing.number}); nothing to build")
        # A bootstrap interrupted after publishing still owes the embedded policy its prompts.
        if existing is None or (embedded and needs_prompts):
            prompts_file = settings.DATA_DIR / "demo_prompts.jsonl"
            write_demo_prompts(prompts_file, n=DEMO_PROMPTS, seed=seed)
            with db.write_session() as session:
                report = prompt_service.import_text(
                    db=session,
                    content=prompts_file.read_text(encoding="utf-8"),
                    fmt="jsonl",
                    source="demo",
                    skip_bad_lines=False,
                    max_chars=settings.PROMPT_MAX_CHARS,
                )
            typer.echo(f"demo prompts: {report.created} imported, {report.duplicates} duplicates ({prompts_file})")
    except DomainError as exc:
        _fail(exc.msg)
    finally:
        db.dispose()
