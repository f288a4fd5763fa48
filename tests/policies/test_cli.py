"""`prefloop policy register|list|activate` and `prefloop bootstrap`, through the real command line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import Settings
from app.core.db import Database
from app.policies import registry
from app.policies import service as policy_service
from app.prompts import service as prompt_service

ROOT = Path(__file__).resolve().parents[2]


def env(settings) -> dict[str, str]:
    return {"PREFLOOP_DATA_DIR": str(settings.DATA_DIR), "PREFLOOP_DATABASE_URL": settings.database_url}


def run(settings, *args):
    return CliRunner().invoke(cli, list(args), env=env(settings))


def test_register_list_and_activate(settings, db, tiny_policy_dir):
    first = run(settings, "policy", "register", str(tiny_policy_dir))
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == f"registered {tiny_policy_dir} as policy version 1 (active)"
    second = run(settings, "policy", "register", str(tiny_policy_dir))
    assert second.stdout.strip().endswith("as policy version 2 (candidate)")

    listed = run(settings, "policy", "list").stdout.splitlines()
    assert listed[0].split() == ["ver", "status", "parent", "created", "source"]
    assert [line.split()[:3] for line in listed[1:]] == [["2", "candidate", "-"], ["1", "active", "-"]]
    assert listed[1].endswith(str(tiny_policy_dir))

    assert run(settings, "policy", "activate", "2").stdout.strip() == "policy version 2 is active"
    with db.session() as session:
        active = policy_service.get_active(db=session)
        assert active.number == 2 and active.parent_id is None and active.source == str(tiny_policy_dir)
        path = Path(active.path)
    assert path == registry.version_dir(settings.registry_dir, "policy", 2)
    assert registry.read_manifest(path)["source"] == str(tiny_policy_dir)

    third = run(settings, "policy", "register", str(tiny_policy_dir), "--activate")
    assert third.stdout.strip().endswith("as policy version 3 (active)")


def test_activate_unknown_version(settings, db):
    result = run(settings, "policy", "activate", "7")
    assert result.exit_code == 2 and result.stderr.strip() == "error: Policy version 7 does not exist."


def test_list_without_versions(settings, db):
    listed = run(settings, "policy", "list").stdout
    assert listed.startswith("no policy versions yet; run `prefloop bootstrap`")


@pytest.mark.parametrize(
    "how,expected",
    [
        ("missing", "Model directory {path} does not exist."),
        ("no weights", "{path} has no weights"),
        ("no pad token", "has no pad token. Add a dedicated one (not EOS)"),
        ("mismatched weights", "do not match its config.json (unexpected keys: transformer.h.1."),
    ],
)
def test_register_refuses_a_broken_model_with_a_clear_error(settings, db, tiny_policy_dir, tmp_path, how, expected):
    path = tmp_path / "model"
    shutil.copytree(tiny_policy_dir, path)
    if how == "missing":
        shutil.rmtree(path)
    elif how == "no weights":
        (path / "model.safetensors").unlink()
    elif how == "no pad token":
        config = json.loads((path / "tokenizer_config.json").read_text())
        del config["pad_token"]
        (path / "tokenizer_config.json").write_text(json.dumps(config))
    else:
        config = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps({**config, "n_layer": 1}))
    result = run(settings, "policy", "register", str(path))
    assert result.exit_code == 2
    error = result.stderr.strip().splitlines()[-1]  # after transformers' own load report, if any
    assert error.startswith("error: ") and expected.format(path=path) in error
    with db.session() as session:
        assert policy_service.list_versions(db=session) == []
    assert registry.highest_number(settings.registry_dir, "policy") == 0


def test_register_an_unreachable_hub_id(settings, db, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # as without network, but at once
    result = run(settings, "policy", "register", "nobody/no-such-model")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: could not load a tokenizer from 'nobody/no-such-model'")


def fake_build(tiny_policy_dir):
    """build_policy's contract (a HF directory in out_dir, a metrics dict) without the training time;
    the real build runs in test_bootstrap_builds_the_embedded_policy_for_real and in tiny_policy_dir."""

    def build(out_dir, preset="default", seed=0, progress=True):
        shutil.copytree(tiny_policy_dir, out_dir, dirs_exist_ok=True)
        return {"preset": preset, "seed": seed, "final_loss": 4.5, "config": {"n_layer": 2}}

    return build


def test_bootstrap_publishes_version_1_and_imports_demo_prompts_once(settings, db, tiny_policy_dir, monkeypatch):
    monkeypatch.setattr("trainer.embedded.build.build_policy", fake_build(tiny_policy_dir))
    result = run(settings, "bootstrap", "--preset", "test")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "building the embedded policy (preset test, seed 0); this runs once"
    assert lines[1].startswith("policy version 1 is active (")
    counts = re.match(r"demo prompts: (\d+) imported, (\d+) duplicates", lines[2])
    created, duplicates = int(counts[1]), int(counts[2])
    assert created + duplicates == 200 and created > 150
    with db.session() as session:
        version = policy_service.get_active(db=session)
        assert (version.number, version.source) == (1, "embedded:test")
        assert version.metrics == {"preset": "test", "seed": 0, "final_loss": 4.5}
        assert prompt_service.count_active(db=session) == created
        assert {p.source for p in prompt_service.list_(db=session)[0]} == {"demo"}
    assert not list((settings.registry_dir / "policy").glob(".staging-*"))

    again = run(settings, "bootstrap", "--preset", "test")
    assert again.exit_code == 0 and again.stdout.strip() == "a policy exists (version 1); nothing to build"


def test_bootstrap_interrupted_after_publishing_still_imports_the_prompts(settings, db, tiny_policy_dir, monkeypatch):
    monkeypatch.setattr("trainer.embedded.build.build_policy", fake_build(tiny_policy_dir))
    monkeypatch.setattr(
        "trainer.embedded.build.write_demo_prompts", lambda path, n, seed: (_ for _ in ()).throw(KeyboardInterrupt())
    )
    assert run(settings, "bootstrap", "--preset", "test").exit_code != 0
    monkeypatch.undo()
    monkeypatch.setattr("trainer.embedded.build.build_policy", fake_build(tiny_policy_dir))
    result = run(settings, "bootstrap", "--preset", "test")
    assert result.stdout.splitlines()[0] == "a policy exists (version 1); nothing to build"
    assert result.stdout.splitlines()[1].startswith("demo prompts: ")
    with db.session() as session:
        assert prompt_service.count_active(db=session) > 150


def test_bootstrap_leaves_a_registered_policy_alone(settings, db, tiny_policy_dir):
    run(settings, "policy", "register", str(tiny_policy_dir))
    result = run(settings, "bootstrap")
    assert result.stdout.strip() == "a policy exists (version 1); nothing to build"
    with db.session() as session:
        assert prompt_service.count_active(db=session) == 0, "demo prompts only come with the embedded policy"


def test_bootstrap_unknown_preset(settings, db):
    result = run(settings, "bootstrap", "--preset", "huge")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: unknown preset 'huge'; choose one of default, test"


@pytest.mark.slow
def test_bootstrap_builds_the_embedded_policy_for_real(tmp_path):
    """The README's first-run path, as its own process: offline build, publish, prompts, then sampling."""
    data_dir = tmp_path / "data"
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PREFLOOP_DATA_DIR": str(data_dir),
        "PREFLOOP_DATABASE_URL": "",
        "PREFLOOP_SAMPLER_LOW_WATER": "2",
        "PREFLOOP_SAMPLER_MAX_NEW_TOKENS": "16",
    }
    for args in (["bootstrap", "--preset", "test"], ["sampler", "--once"]):
        result = subprocess.run(
            [sys.executable, "-c", "from app.cli import main; main()", *args],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "created 2 comparisons with policy version 1"
    settings = Settings(DATA_DIR=data_dir, _env_file=None)
    db = Database(settings.database_url)
    with db.session() as session:
        assert policy_service.get_active(db=session).source == "embedded:test"
    db.dispose()
