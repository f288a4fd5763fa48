"""The model registry on disk: one directory per version, published atomically.

Layout, under Settings.registry_dir:

    policy/v0001/   config.json, *.safetensors, tokenizer files, manifest.json
    policy/v0002/   ...
    reward/v0001/   ...
    policy/.staging-<uuid>/   a publish in progress (or one that crashed): never a version

A version directory appears in one `rename`, after every file in it has been written and fsynced, so a
reader (or a crash) never sees half of one. The database row is recorded only after the rename, and the
database is what lists versions: a directory without a row (a crash between the two) is invisible, and
`highest_number` keeps its number from being reused. No torch here: the web process imports this.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import struct
import time
import uuid
from pathlib import Path
from typing import Any

from app.core.db import utcnow
from app.core.errors import Conflict, Unprocessable

KINDS = ("policy", "reward")
MANIFEST = "manifest.json"
STAGING_PREFIX = ".staging-"
# A staging directory older than this belongs to a publish that died; younger ones may be in progress.
STALE_STAGING_S = 3600
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
# Any one of these is enough for AutoTokenizer (fast tokenizer, sentencepiece, BPE or WordPiece vocab).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt")
_VERSION_DIR = re.compile(r"^v(\d{4,})$")


class InvalidModelDir(Unprocessable):
    """A directory that is not a complete Hugging Face model (the message says what is missing)."""


def version_dir(registry_dir: Path, kind: str, number: int) -> Path:
    return Path(registry_dir) / _checked_kind(kind) / f"v{number:04d}"


def _checked_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"registry kind must be one of {KINDS}, not {kind!r}")
    return kind


def highest_number(registry_dir: Path, kind: str) -> int:
    """The highest version number with a directory on disk (0 when none), published or orphaned."""
    root = Path(registry_dir) / _checked_kind(kind)
    if not root.is_dir():
        return 0
    return max((int(m.group(1)) for p in root.glob("v*") if (m := _VERSION_DIR.match(p.name))), default=0)


def validate_model_dir(path: Path) -> None:
    """Raise InvalidModelDir unless `path` holds a config, readable weights and tokenizer files.

    Checks what can be checked without torch; whether the weights fit the config is checked by loading
    (trainer.generate.load_policy).
    """
    path = Path(path)
    if not path.exists():
        raise InvalidModelDir(f"Model directory {path} does not exist.", loc=("path",))
    if not path.is_dir():
        raise InvalidModelDir(f"{path} is a file, not a model directory.", loc=("path",))
    config = path / "config.json"
    if not config.is_file():
        raise InvalidModelDir(
            f"{path} has no config.json: not a Hugging Face model directory (save it with save_pretrained).",
            loc=("path",),
        )
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise InvalidModelDir(f"{config} is not valid JSON ({exc}).", loc=("path",)) from exc
    if not model_type:
        raise InvalidModelDir(
            f"{config} has no model_type, so transformers cannot tell which model it is.", loc=("path",)
        )
    _check_weights(path)
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise InvalidModelDir(
            f"{path} has no tokenizer files (one of {', '.join(TOKENIZER_FILES)}); "
            "save the tokenizer into the same directory with tokenizer.save_pretrained.",
            loc=("path",),
        )


def _check_weights(path: Path) -> None:
    index = next((path / name for name in SHARD_INDEXES if (path / name).is_file()), None)
    if index is not None:
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidModelDir(f"{index} is not a valid shard index ({exc}).", loc=("path",)) from exc
        files = [path / shard for shard in shards]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise InvalidModelDir(f"{path} is missing weight shards: {', '.join(missing)}.", loc=("path",))
    else:
        files = [path / name for name in WEIGHT_FILES if (path / name).is_file()]
        if not files:
            raise InvalidModelDir(
                f"{path} has no weights (model.safetensors, sharded safetensors or pytorch_model.bin).",
                loc=("path",),
            )
    for file in files:
        if file.suffix == ".safetensors":
            _check_safetensors(file)


def _check_safetensors(file: Path) -> None:
    """A safetensors file is an 8-byte header length, a JSON header, then exactly the bytes it lists:
    a truncated or overwritten file fails this without reading the tensors."""
    size = file.stat().st_size
    try:
        with file.open("rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            if header_len > size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(handle.read(header_len))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError) as exc:
        raise InvalidModelDir(f"{file} is not a valid safetensors file ({exc}).", loc=("path",)) from exc
    if 8 + header_len + end != size:
        raise InvalidModelDir(
            f"{file} is truncated or corrupt: its header lists {8 + header_len + end} bytes, the file has {size}.",
            loc=("path",),
        )


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest.json of a version directory."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise InvalidModelDir(f"{path} has no {MANIFEST}; it is not a registry version.", loc=("path",))
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidModelDir(f"{file} is not valid JSON ({exc}).", loc=("path",)) from exc
    if not isinstance(manifest, dict):
        raise InvalidModelDir(f"{file} must hold a JSON object.", loc=("path",))
    return manifest


def publish(
    *, registry_dir: Path, kind: str, number: int, source_dir: Path, manifest: dict[str, Any], move: bool = False
) -> Path:
    """Copy (or move) a model directory into the registry as version `number`; returns its path.

    `manifest` is the lineage: parent version, producing round, data snapshot, metrics, source.
    `kind`, `number` and `created_at` are filled in. Record the database row only after this returns.
    Raises InvalidModelDir for an incomplete source and Conflict when the version already exists.
    """
    target = version_dir(registry_dir, kind, number)
    validate_model_dir(source_dir)
    if target.exists():
        raise Conflict(f"{kind} version {number} already exists at {target}.", loc=("number",))
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(registry_dir, kind)
    staging = root / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    try:
        if move:
            shutil.move(source_dir, staging)
        else:
            shutil.copytree(source_dir, staging)
        body = {**manifest, "kind": kind, "number": number}
        body.setdefault("created_at", utcnow().isoformat())
        (staging / MANIFEST).write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _fsync_tree(staging)
        # rename() of a directory onto an existing non-empty one fails, so two publishers of the same
        # number cannot overwrite each other; the loser gets an error and its staging is removed.
        try:
            os.rename(staging, target)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            raise Conflict(f"{kind} version {number} already exists at {target}.", loc=("number",)) from exc
        _fsync_dir(root)
    except BaseException:
        if move and staging.exists() and not Path(source_dir).exists():
            shutil.move(staging, source_dir)  # give the caller its directory back
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def remove_stale_staging(registry_dir: Path, kind: str, *, older_than_s: float = STALE_STAGING_S) -> list[Path]:
    """Delete staging directories left by publishes that crashed; returns what was removed."""
    root = Path(registry_dir) / _checked_kind(kind)
    if not root.is_dir():
        return []
    cutoff = time.time() - older_than_s
    removed = []
    for staging in root.glob(f"{STAGING_PREFIX}*"):
        if staging.is_dir() and staging.stat().st_mtime < cutoff:
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(staging)
    return removed


def _fsync_tree(root: Path) -> None:
    for directory, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(directory))


def _fsync_dir(path: Path) -> None:
    # A directory's entries (new names, renames) are durable only once the directory itself is synced.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
