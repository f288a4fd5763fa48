"""The registry on disk: complete-or-absent versions, manifests, and clear errors for broken model dirs."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.core.errors import Conflict
from app.policies import registry
from app.policies.registry import InvalidModelDir

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_copy(tiny_policy_dir, tmp_path) -> Path:
    path = tmp_path / "model"
    shutil.copytree(tiny_policy_dir, path)
    return path


def test_publish_writes_version_with_manifest(tmp_path, tiny_policy_dir):
    path = registry.publish(
        registry_dir=tmp_path / "reg",
        kind="policy",
        number=3,
        source_dir=tiny_policy_dir,
        manifest={"parent": 2, "round_id": 7, "metrics": {"kl": 0.1}},
    )
    assert path == tmp_path / "reg" / "policy" / "v0003"
    assert {p.name for p in tiny_policy_dir.iterdir()} | {"manifest.json"} == {p.name for p in path.iterdir()}
    manifest = registry.read_manifest(path)
    assert manifest["kind"] == "policy" and manifest["number"] == 3 and manifest["parent"] == 2
    assert manifest["round_id"] == 7 and manifest["metrics"] == {"kl": 0.1} and manifest["created_at"]
    assert registry.highest_number(tmp_path / "reg", "policy") == 3
    assert registry.highest_number(tmp_path / "reg", "reward") == 0
    assert not list((tmp_path / "reg" / "policy").glob(".staging-*"))
    assert tiny_policy_dir.is_dir(), "a copy-publish leaves its source alone"


def test_publish_with_move_takes_the_directory(tmp_path, model_copy):
    path = registry.publish(
        registry_dir=tmp_path / "reg", kind="reward", number=1, source_dir=model_copy, manifest={}, move=True
    )
    assert not model_copy.exists() and (path / "model.safetensors").is_file()


def test_publish_refuses_an_existing_number(tmp_path, tiny_policy_dir):
    registry.publish(registry_dir=tmp_path, kind="policy", number=1, source_dir=tiny_policy_dir, manifest={})
    with pytest.raises(Conflict, match="policy version 1 already exists"):
        registry.publish(registry_dir=tmp_path, kind="policy", number=1, source_dir=tiny_policy_dir, manifest={})
    assert not list((tmp_path / "policy").glob(".staging-*"))


def test_publish_refuses_an_unknown_kind(tmp_path, tiny_policy_dir):
    with pytest.raises(ValueError, match="registry kind must be one of"):
        registry.publish(registry_dir=tmp_path, kind="critic", number=1, source_dir=tiny_policy_dir, manifest={})


def test_failed_copy_leaves_no_version_and_no_staging(tmp_path, tiny_policy_dir, monkeypatch):
    def failing_copy(src, dst, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copytree", functools.partial(shutil.copytree, copy_function=failing_copy))
    with pytest.raises(shutil.Error):
        registry.publish(registry_dir=tmp_path, kind="policy", number=1, source_dir=tiny_policy_dir, manifest={})
    assert list((tmp_path / "policy").iterdir()) == []


def test_failed_move_publish_gives_the_source_back(tmp_path, model_copy, monkeypatch):
    monkeypatch.setattr(registry, "_fsync_tree", lambda root: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        registry.publish(
            registry_dir=tmp_path / "reg", kind="policy", number=1, source_dir=model_copy, manifest={}, move=True
        )
    assert (model_copy / "model.safetensors").is_file()
    assert list((tmp_path / "reg" / "policy").iterdir()) == []


# A publish killed with SIGKILL at a chosen point: the child signals when it is there, then waits.
CRASHING_PUBLISH = """
import functools, os, shutil, signal, sys
from pathlib import Path
from app.policies import registry

registry_dir, source, ready, stage = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]

def stop_here():
    ready.touch()
    signal.pause()

if stage == "copy":  # after the first file of the model is copied
    def copy_one_then_stop(src, dst, **kwargs):
        shutil.copy2(src, dst, **kwargs)
        stop_here()
    shutil.copytree = functools.partial(shutil.copytree, copy_function=copy_one_then_stop)
else:  # everything written, before the rename
    os.fsync = lambda fd: stop_here()
registry.publish(registry_dir=registry_dir, kind="policy", number=1, source_dir=source, manifest={})
"""


@pytest.mark.parametrize("stage", ["copy", "fsync"])
def test_publish_killed_midway_leaves_no_version(tmp_path, tiny_policy_dir, stage):
    reg, ready = tmp_path / "reg", tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_PUBLISH, str(reg), str(tiny_policy_dir), str(ready), stage],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert child.poll() is None, "the publishing child exited early"
        assert time.monotonic() < deadline, "the publishing child never reached the crash point"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()

    [staging] = list((reg / "policy").iterdir())
    assert staging.name.startswith(".staging-") and any(staging.iterdir()), "the crash left a partial staging"
    assert registry.highest_number(reg, "policy") == 0
    assert not (reg / "policy" / "v0001").exists()

    # The next publish removes the leftover once it is old enough to be surely dead, and succeeds.
    an_hour_ago = time.time() - registry.STALE_STAGING_S - 1
    os.utime(staging, (an_hour_ago, an_hour_ago))
    path = registry.publish(registry_dir=reg, kind="policy", number=1, source_dir=tiny_policy_dir, manifest={})
    assert [p.name for p in (reg / "policy").iterdir()] == ["v0001"]
    registry.validate_model_dir(path)


def test_fresh_staging_of_a_running_publish_is_not_removed(tmp_path):
    running = tmp_path / "policy" / ".staging-abc"
    running.mkdir(parents=True)
    assert registry.remove_stale_staging(tmp_path, "policy") == []
    assert running.exists()
    assert registry.remove_stale_staging(tmp_path, "policy", older_than_s=-1) == [running]


def _break(path: Path, how: str) -> str:
    """Damage a model directory one way; returns a fragment of the expected error."""
    if how == "missing":
        shutil.rmtree(path)
        return "does not exist"
    if how == "file":
        shutil.rmtree(path)
        path.write_text("not a dir")
        return "is a file, not a model directory"
    if how == "no config":
        (path / "config.json").unlink()
        return "has no config.json"
    if how == "bad config":
        (path / "config.json").write_text("{not json")
        return "config.json is not valid JSON"
    if how == "config without model_type":
        (path / "config.json").write_text(json.dumps({"n_layer": 2}))
        return "has no model_type"
    if how == "no weights":
        (path / "model.safetensors").unlink()
        return "has no weights"
    if how == "truncated weights":
        data = (path / "model.safetensors").read_bytes()
        (path / "model.safetensors").write_bytes(data[: len(data) // 2])
        return "is truncated or corrupt"
    if how == "garbage weights":
        (path / "model.safetensors").write_bytes(b"\xff" * 64)
        return "is not a valid safetensors file"
    if how == "missing shard":
        (path / "model.safetensors").rename(path / "model-00001-of-00002.safetensors")
        index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
        (path / "model.safetensors.index.json").write_text(json.dumps(index))
        return "missing weight shards: model-00002-of-00002.safetensors"
    if how == "no tokenizer":
        (path / "tokenizer.json").unlink()
        return "has no tokenizer files"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "missing",
        "file",
        "no config",
        "bad config",
        "config without model_type",
        "no weights",
        "truncated weights",
        "garbage weights",
        "missing shard",
        "no tokenizer",
    ],
)
def test_validate_model_dir_says_what_is_wrong(model_copy, how):
    registry.validate_model_dir(model_copy)
    expected = _break(model_copy, how)
    with pytest.raises(InvalidModelDir, match=expected):
        registry.validate_model_dir(model_copy)


def test_publish_refuses_a_broken_source_and_writes_nothing(tmp_path, model_copy):
    _break(model_copy, "no tokenizer")
    with pytest.raises(InvalidModelDir, match="has no tokenizer files"):
        registry.publish(registry_dir=tmp_path / "reg", kind="policy", number=1, source_dir=model_copy, manifest={})
    assert not (tmp_path / "reg" / "policy" / "v0001").exists()


def test_read_manifest_errors(tmp_path):
    with pytest.raises(InvalidModelDir, match="has no manifest.json"):
        registry.read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(InvalidModelDir, match="must hold a JSON object"):
        registry.read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(InvalidModelDir, match="is not valid JSON"):
        registry.read_manifest(tmp_path)
