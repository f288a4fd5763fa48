"""ORM builders for export tests: policy versions, prompts, pairs, judgments and rounds."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.comparisons.models import Choice, Comparison, Completion
from app.judgments.models import Judgment
from app.policies.models import PolicyStatus, PolicyVersion
from app.prompts.models import Prompt
from app.training.models import RoundStatus, TrainingRound


def policy(session: Session, number: int) -> PolicyVersion:
    """The version with this number, created (archived) if missing."""
    version = session.scalar(select(PolicyVersion).where(PolicyVersion.number == number))
    if version is None:
        version = PolicyVersion(number=number, path=f"v{number}", status=PolicyStatus.archived)
        session.add(version)
        session.flush()
    return version


def prompt(session: Session, text: str, messages: list[dict] | None = None) -> Prompt:
    messages = messages or [{"role": "user", "content": text}]
    row = Prompt(messages=messages, text=text, content_hash=hashlib.sha256(repr(messages).encode()).hexdigest())
    session.add(row)
    session.flush()
    return row


def comparison(session: Session, the_prompt: Prompt, *, text_a: str = "answer A", text_b: str = "answer B",
               version_a: int = 1, version_b: int = 2, is_gold: bool = False,
               gold_choice: Choice | None = None) -> Comparison:
    a = Completion(prompt_id=the_prompt.id, policy_version_id=policy(session, version_a).id, text=text_a,
                   token_count=len(text_a.split()), finish_reason="eos")
    b = Completion(prompt_id=the_prompt.id, policy_version_id=policy(session, version_b).id, text=text_b,
                   token_count=len(text_b.split()), finish_reason="length")
    session.add_all([a, b])
    session.flush()
    row = Comparison(prompt_id=the_prompt.id, completion_a_id=a.id, completion_b_id=b.id, is_gold=is_gold,
                     gold_choice=gold_choice)
    session.add(row)
    session.flush()
    return row


def judgment(session: Session, the_comparison: Comparison, annotator_id: int, choice: Choice, *,
             shown_left: str = "a", strength: int | None = None, rationale: str = "",
             time_spent_ms: int | None = 1500, created_at: datetime | None = None) -> Judgment:
    row = Judgment(comparison_id=the_comparison.id, annotator_id=annotator_id, choice=choice, shown_left=shown_left,
                   strength=strength, rationale=rationale, time_spent_ms=time_spent_ms, channel="api")
    if created_at is not None:
        row.created_at = created_at
    session.add(row)
    the_comparison.judgment_count += 1
    session.flush()
    return row


def training_round(session: Session, snapshot_max_judgment_id: int | None) -> TrainingRound:
    row = TrainingRound(status=RoundStatus.succeeded, snapshot_max_judgment_id=snapshot_max_judgment_id)
    session.add(row)
    session.flush()
    return row
