"""Arranging training-round tests: a fake policy, bulk preferences, a scripted trainer, a real tiny policy.

Most worker tests run `tests/training/fake_trainer.py` in place of `python -m trainer.round`: the same
files and exit codes, scripted, in a fraction of a second and without torch. The tests that need the
real trainer use the embedded policy's "test" preset, built once per session.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from app.core.config import Settings
from app.core.db import Database
from app.policies.models import PolicyVersion
from app.training.executors import LocalExecutor
from app.training.worker import Worker
from tests.factories import make_judged_pair, make_user, publish_policy_version

FAKE_TRAINER = Path(__file__).with_name("fake_trainer.py")


def fake_model_dir(path: Path) -> Path:
    """The smallest directory the registry accepts as a model (config, valid safetensors, tokenizer)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    (path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0\0\0")
    (path / "tokenizer.json").write_text("{}")
    return path


def add_preferences(
    db: Database,
    *,
    annotator_id: int,
    policy_version_id: int,
    n_prompts: int = 60,
    per_prompt: int = 3,
    choice: str = "a",
    active: bool = True,
) -> None:
    """Clear-cut judgments (a polite answer against a rude one) on n_prompts distinct prompts. The
    defaults give 12 held-out pairs, above the default minimum of 10."""
    with db.session() as session:
        for i in range(n_prompts):
            for j in range(per_prompt):
                make_judged_pair(
                    session,
                    annotator_id=annotator_id,
                    choice=choice,
                    prompt=f"question number {i}",
                    prompt_active=active,
                    version_a_id=policy_version_id,
                    text_a=f"thank you, answer {j}.",
                    text_b=f"go away {j}",
                )


@pytest.fixture
def fake_policy(settings, db, tmp_path) -> PolicyVersion:
    """The smallest model directory, published and recorded as version 1, active."""
    version_id = publish_policy_version(settings, db, source_dir=fake_model_dir(tmp_path / "fake-policy"))
    with db.session() as session:
        return session.get(PolicyVersion, version_id)


@pytest.fixture
def trained_data(db, fake_policy) -> int:
    """180 usable judgments on 60 prompts (12 held out at 10 %, 33 at the derived 20 %); returns the annotator's id."""
    annotator_id = make_user(db, "ann")
    add_preferences(db, annotator_id=annotator_id, policy_version_id=fake_policy.id)
    return annotator_id


def fake_worker(settings: Settings, db: Database, script: dict, tick_s: float = 0.05) -> Worker:
    """A worker whose trainer is the scripted fake (see fake_trainer.py for the script's keys)."""
    command = [sys.executable, str(FAKE_TRAINER), "--script", json.dumps(script)]
    return Worker(settings=settings, db=db, executor=LocalExecutor(command), tick_s=tick_s)
