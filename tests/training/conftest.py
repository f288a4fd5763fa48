"""Builders for training-round tests: registered policies, judgments, a scripted trainer, a real tiny policy.

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

from app.auth.models import Role, User
from app.comparisons.models import Comparison, Completion
from app.core.config import Settings
from app.core.db import Database
from app.judgments.models import Judgment
from app.policies.cli import publish_base
from app.policies.models import PolicyVersion
from app.prompts.models import Prompt
from app.prompts.service import content_hash
from app.training.executors import LocalExecutor
from app.training.worker import Worker

FAKE_TRAINER = Path(__file__).with_name("fake_trainer.py")


def fake_model_dir(path: Path) -> Path:
    """The smallest directory the registry accepts as a model (config, valid safetensors, tokenizer)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    (path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0\0\0")
    (path / "tokenizer.json").write_text("{}")
    return path


def register_policy(settings: Settings, db: Database, source_dir: Path) -> PolicyVersion:
    """Publish `source_dir` as a base version; it becomes the active one if none is."""
    return publish_base(
        settings, db, source_dir=source_dir, source=str(source_dir), activate=False, metrics={}, move=False
    )


def make_annotator(db: Database, username: str = "ann", **flags) -> int:
    with db.session() as session:
        user = User(username=username, password_hash="-", role=Role.annotator, **flags)
        session.add(user)
        session.flush()
        return user.id


def add_judgment(
    db: Database,
    *,
    annotator_id: int,
    policy_version_id: int,
    prompt: str,
    a: str,
    b: str,
    choice: str = "a",
    strength: int | None = None,
    active: bool = True,
) -> int:
    """A judgment on a new comparison (the prompt is reused when it exists); returns the judgment id."""
    with db.session() as session:
        return _judgment(session, annotator_id, policy_version_id, prompt, a, b, choice, strength, active)


def _judgment(session, annotator_id, policy_version_id, prompt, a, b, choice="a", strength=None, active=True) -> int:
    messages = [{"role": "user", "content": prompt}]
    row = session.query(Prompt).filter_by(content_hash=content_hash(messages)).one_or_none()
    if row is None:
        row = Prompt(messages=messages, text=prompt, content_hash=content_hash(messages), is_active=active)
        session.add(row)
        session.flush()
    completions = [
        Completion(
            prompt_id=row.id,
            policy_version_id=policy_version_id,
            text=text,
            token_count=1,
            finish_reason="eos",
        )
        for text in (a, b)
    ]
    session.add_all(completions)
    session.flush()
    comparison = Comparison(prompt_id=row.id, completion_a_id=completions[0].id, completion_b_id=completions[1].id)
    session.add(comparison)
    session.flush()
    judgment = Judgment(
        comparison_id=comparison.id,
        annotator_id=annotator_id,
        choice=choice,
        strength=strength,
        shown_left="a",
    )
    session.add(judgment)
    session.flush()
    return judgment.id


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
                _judgment(
                    session,
                    annotator_id,
                    policy_version_id,
                    f"question number {i}",
                    f"thank you, answer {j}.",
                    f"go away {j}",
                    choice,
                    active=active,
                )


@pytest.fixture
def fake_policy(settings, db, tmp_path) -> PolicyVersion:
    return register_policy(settings, db, fake_model_dir(tmp_path / "fake-policy"))


@pytest.fixture
def trained_data(db, fake_policy) -> int:
    """180 usable judgments on 60 prompts (12 held out); returns the annotator's id."""
    annotator_id = make_annotator(db)
    add_preferences(db, annotator_id=annotator_id, policy_version_id=fake_policy.id)
    return annotator_id


def fake_worker(settings: Settings, db: Database, script: dict, tick_s: float = 0.05) -> Worker:
    """A worker whose trainer is the scripted fake (see fake_trainer.py for the script's keys)."""
    command = [sys.executable, str(FAKE_TRAINER), "--script", json.dumps(script)]
    return Worker(settings=settings, db=db, executor=LocalExecutor(command), tick_s=tick_s)
