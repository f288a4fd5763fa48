"""A small judged world: three annotators, three policy versions, five pairs, two rounds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from app.comparisons.models import Choice
from app.core.db import Database
from app.training.models import RoundStatus, TrainingRound
from tests.builders import make_annotators
from tests.export import builders

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
        p1 = builders.prompt(s, "Name a colour.")
        p2 = builders.prompt(s, "Say hi.")
        p3 = builders.prompt(s, "Count to three.")
        p4 = builders.prompt(s, "What is 2+2?")
        p5 = builders.prompt(s, "And then?", messages=[
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell a story."},
            {"role": "assistant", "content": "Once upon a time."}, {"role": "user", "content": "And then?"},
        ])
        c1 = builders.comparison(s, p1, text_a="Blue.", text_b="Green.")
        c2 = builders.comparison(s, p2, text_a="Hi!", text_b="Hello there.")
        c3 = builders.comparison(s, p3, text_a="1 2 3", text_b="one two three", version_a=2, version_b=3)
        c4 = builders.comparison(s, p4, text_a="4", text_b="5", version_a=2, version_b=3, is_gold=True,
                                 gold_choice=Choice.a)
        c5 = builders.comparison(s, p5, text_a="They lived.", text_b="The end.", version_a=3, version_b=1)
        plan = [
            (c1, "alice", Choice.a, "b", 3, "clearer"), (c1, "bob", Choice.a, "a", None, ""),
            (c2, "alice", Choice.b, "a", 1, ""), (c1, "carol", Choice.b, "b", 2, "shorter"),
            (c3, "alice", Choice.tie, "a", None, ""), (c4, "bob", Choice.both_bad, "b", None, "both wrong"),
            (c5, "bob", Choice.a, "a", 2, ""), (c5, "carol", Choice.b, "b", None, ""),
        ]
        judgments = [
            builders.judgment(s, c, users[who], choice, shown_left=left, strength=strength, rationale=why,
                              created_at=T0 + timedelta(hours=i)).id
            for i, (c, who, choice, left, strength, why) in enumerate(plan)
        ]
        r1 = builders.training_round(s, judgments[2])
        r2 = builders.training_round(s, judgments[5])
        r3 = TrainingRound(status=RoundStatus.queued)
        s.add(r3)
        s.flush()
        return World(users, {"c1": c1.id, "c2": c2.id, "c3": c3.id, "c4": c4.id, "c5": c5.id}, judgments,
                     {"r1": r1.id, "r2": r2.id, "r3": r3.id})


@pytest.fixture
def world(db, admin_token) -> World:
    return build_world(db)
