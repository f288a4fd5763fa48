"""ORM builders for export tests: policy versions, prompts, pairs, judgments and rounds, and a small
judged world built from them (three annotators, three policy versions, five pairs, two rounds)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.comparisons.models import Choice, Comparison, Completion
from app.core.db import Database
from app.judgments.models import Judgment
from app.policies.models import PolicyStatus, PolicyVersion
from app.prompts.models import Prompt
from app.training.models import RoundStatus, TrainingRound
from tests.builders import make_annotators


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


def comparison(
    session: Session,
    the_prompt: Prompt,
    *,
    text_a: str = "answer A",
    text_b: str = "answer B",
    version_a: int = 1,
    version_b: int = 2,
    is_gold: bool = False,
    gold_choice: Choice | None = None,
) -> Comparison:
    a = Completion(
        prompt_id=the_prompt.id,
        policy_version_id=policy(session, version_a).id,
        text=text_a,
        token_count=len(text_a.split()),
        finish_reason="eos",
    )
    b = Completion(
        prompt_id=the_prompt.id,
        policy_version_id=policy(session, version_b).id,
        text=text_b,
        token_count=len(text_b.split()),
        finish_reason="length",
    )
    session.add_all([a, b])
    session.flush()
    row = Comparison(
        prompt_id=the_prompt.id,
        completion_a_id=a.id,
        completion_b_id=b.id,
        is_gold=is_gold,
        gold_choice=gold_choice,
    )
    session.add(row)
    session.flush()
    return row


def judgment(
    session: Session,
    the_comparison: Comparison,
    annotator_id: int,
    choice: Choice,
    *,
    shown_left: str = "a",
    strength: int | None = None,
    rationale: str = "",
    time_spent_ms: int | None = 1500,
    created_at: datetime | None = None,
) -> Judgment:
    row = Judgment(
        comparison_id=the_comparison.id,
        annotator_id=annotator_id,
        choice=choice,
        shown_left=shown_left,
        strength=strength,
        rationale=rationale,
        time_spent_ms=time_spent_ms,
        channel="api",
    )
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


T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class World:
    users: dict[str, int]
    comparisons: dict[str, int]
    judgments: list[int]  # in creation order
    rounds: dict[str, int]


def build_world(db: Database) -> World:
    users = dict(zip(("alice", "bob", "carol"), make_annotators(db, 3), strict=True))
    with db.session() as s:
        p1 = prompt(s, "Name a colour.")
        p2 = prompt(s, "Say hi.")
        p3 = prompt(s, "Count to three.")
        p4 = prompt(s, "What is 2+2?")
        p5 = prompt(
            s,
            "And then?",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Tell a story."},
                {"role": "assistant", "content": "Once upon a time."},
                {"role": "user", "content": "And then?"},
            ],
        )
        c1 = comparison(s, p1, text_a="Blue.", text_b="Green.")
        c2 = comparison(s, p2, text_a="Hi!", text_b="Hello there.")
        c3 = comparison(s, p3, text_a="1 2 3", text_b="one two three", version_a=2, version_b=3)
        c4 = comparison(s, p4, text_a="4", text_b="5", version_a=2, version_b=3, is_gold=True, gold_choice=Choice.a)
        c5 = comparison(s, p5, text_a="They lived.", text_b="The end.", version_a=3, version_b=1)
        plan = [
            (c1, "alice", Choice.a, "b", 3, "clearer"),
            (c1, "bob", Choice.a, "a", None, ""),
            (c2, "alice", Choice.b, "a", 1, ""),
            (c1, "carol", Choice.b, "b", 2, "shorter"),
            (c3, "alice", Choice.tie, "a", None, ""),
            (c4, "bob", Choice.both_bad, "b", None, "both wrong"),
            (c5, "bob", Choice.a, "a", 2, ""),
            (c5, "carol", Choice.b, "b", None, ""),
        ]
        judgments = [
            judgment(
                s,
                c,
                users[who],
                choice,
                shown_left=left,
                strength=strength,
                rationale=why,
                created_at=T0 + timedelta(hours=i),
            ).id
            for i, (c, who, choice, left, strength, why) in enumerate(plan)
        ]
        r1 = training_round(s, judgments[2])
        r2 = training_round(s, judgments[5])
        r3 = TrainingRound(status=RoundStatus.queued)
        s.add(r3)
        s.flush()
        return World(
            users,
            {"c1": c1.id, "c2": c2.id, "c3": c3.id, "c4": c4.id, "c5": c5.id},
            judgments,
            {"r1": r1.id, "r2": r2.id, "r3": r3.id},
        )
