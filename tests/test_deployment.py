"""docker-compose.yml cannot run here (no Docker engine), so check it for consistency instead."""

from __future__ import annotations

from pathlib import Path

import typer.main
import yaml

from app.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def _is_prefloop_command(argv: list[str]) -> bool:
    # typer ships its own click, so groups are recognised by what they do, not by class.
    command = typer.main.get_command(cli)
    assert argv[0] == "prefloop", argv
    for word in argv[1:]:
        if word.startswith("-") or not hasattr(command, "list_commands"):
            break
        if word not in command.list_commands(None):
            return False
        command = command.get_command(None, word)
    return not hasattr(command, "list_commands")


def test_every_compose_service_runs_a_real_prefloop_subcommand():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = {name: svc["command"] for name, svc in compose["services"].items() if "command" in svc}
    assert {"migrate", "web", "worker"} <= set(commands)
    for name, argv in commands.items():
        assert _is_prefloop_command(argv), f"service {name}: {argv} is not a prefloop subcommand"


def test_compose_has_postgres_volume_and_gpu_worker():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_a_service_sends_webhooks_since_the_web_app_runs_no_background_work():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["web"]["environment"]["PREFLOOP_RUN_BACKGROUND"] == "false"
    sends = ["prefloop", "webhooks", "deliver"]
    senders = [name for name, svc in services.items() if svc.get("command", [])[:3] == sends]
    assert senders == ["webhooks"]
    sender = services["webhooks"]
    assert sender["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # the same settings as the web app: the database, and the key the signing secrets are encrypted with
    for name in ("PREFLOOP_DATABASE_URL", "PREFLOOP_SECRET_KEY", "PREFLOOP_WEBHOOK_ALLOWED_HOSTS"):
        assert sender["environment"][name] == services["web"]["environment"][name]


def test_files_the_dockerfile_copies_exist():
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_readme_quick_start_commands_exist_and_ci_calls_the_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "scripts/run.sh" in readme and "scripts/test.sh" in readme
    assert (ROOT / "scripts/run.sh").exists() and (ROOT / "scripts/test.sh").exists()
    assert "scripts/test.sh" in (ROOT / ".ci/run").read_text()
