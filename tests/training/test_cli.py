"""`prefloop rounds launch|list|show|cancel|retry` and `prefloop worker --once`, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from app.cli import cli

runner = CliRunner()


def _env(settings) -> dict[str, str]:
    return {"PREFLOOP_DATABASE_URL": settings.database_url, "PREFLOOP_DATA_DIR": str(settings.DATA_DIR)}


def test_launch_with_overrides_list_show_cancel_retry(settings, db, tmp_path):
    env = _env(settings)
    config = tmp_path / "overrides.json"
    config.write_text(json.dumps({"reward": {"num_epochs": 2}}))
    launched = runner.invoke(
        cli,
        [
            "rounds",
            "launch",
            "--config",
            str(config),
            "--set",
            "ppo.kl_coef=0.2",
            "--set",
            "reference=previous",
            "--set",
            "activate=false",
        ],
        env=env,
    )
    assert launched.exit_code == 0, launched.output
    assert launched.output.strip() == "queued round 1"

    shown = json.loads(runner.invoke(cli, ["rounds", "show", "1"], env=env).output)
    assert shown["config"]["reward"]["num_epochs"] == 2 and shown["config"]["ppo"]["kl_coef"] == 0.2
    assert shown["config"]["reference"] == "previous" and shown["config"]["activate"] is False
    assert shown["trigger"] == "schedule"  # no admin account behind a shell command

    listed = runner.invoke(cli, ["rounds", "list"], env=env)
    assert listed.output.startswith("#1    queued")

    assert runner.invoke(cli, ["rounds", "cancel", "1"], env=env).output.strip() == "round 1 cancelled"
    assert runner.invoke(cli, ["rounds", "retry", "1"], env=env).output.strip() == "round 1 queued again"


def test_bad_input_is_a_clear_error(settings, db):
    env = _env(settings)
    bad = runner.invoke(cli, ["rounds", "launch", "--set", "ppo.num_mini_batches=3"], env=env)
    assert bad.exit_code == 2 and "ppo.num_mini_batches: num_mini_batches (3) must divide batch_size (16)" in bad.output
    assert runner.invoke(cli, ["rounds", "launch", "--set", "nokey"], env=env).exit_code == 2
    patterns = 'evaluate.evasion_patterns=["as an AI", "I (can"]'
    pattern = runner.invoke(cli, ["rounds", "launch", "--set", patterns], env=env)
    assert pattern.exit_code == 2
    assert "evaluate.evasion_patterns.1: 'I (can' is not a valid regular expression: missing )" in pattern.output
    assert "queued" not in pattern.output
    missing = runner.invoke(cli, ["rounds", "show", "5"], env=env)
    assert missing.exit_code == 2 and "Training round 5 does not exist" in missing.output
    assert runner.invoke(cli, ["rounds", "cancel", "5"], env=env).exit_code == 2


def test_worker_once_runs_the_queued_round(settings, db):
    """In its own process, as deployed: no active policy, so the round fails at its snapshot."""
    env = _env(settings)
    assert runner.invoke(cli, ["rounds", "launch"], env=env).exit_code == 0
    done = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "worker", "--once"],
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(runner.invoke(cli, ["rounds", "show", "1"], env=env).output)
    assert shown["status"] == "failed"
    assert shown["error"] == "There is no active policy version to train; register or activate one first."


def test_dry_run_prints_the_plan_queues_nothing_and_exits_1_when_impossible(settings, db):
    env = _env(settings)
    planned = runner.invoke(cli, ["rounds", "launch", "--dry-run", "--set", "reward.num_epochs=2"], env=env)
    assert planned.exit_code == 1, planned.output
    assert "not possible yet, the snapshot would fail:" in planned.output
    assert "held-out pairs: 0, at least 10 needed" in planned.output
    assert "about 34 more usable judgments" in planned.output
    assert "gates.min_rm_accuracy = 0.76" in planned.output and "reward.num_epochs =" not in planned.output
    assert runner.invoke(cli, ["rounds", "list"], env=env).output.strip() == "no rounds"


def test_dry_run_of_a_possible_round_exits_0(settings, db, trained_data):
    planned = runner.invoke(cli, ["rounds", "launch", "--dry-run"], env=_env(settings))
    assert planned.exit_code == 0, planned.output
    assert "usable judgments:   180 preferring one answer" in planned.output
    assert planned.output.rstrip().endswith("ready: the snapshot has enough data for a round")
