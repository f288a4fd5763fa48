"""A small judged world for the export tests: three annotators, three policy versions, five pairs, eight
judgments and three rounds (two with snapshots, one queued)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from app.comparisons.models import Choice
from app.core.db import Database
from app.policies.models import PolicyStatus
from app.training.models import RoundStatus
from tests.factories import (
    make_annotators,
    make_comparison,
    make_judgment,
    make_policy_version,
    make_prompt,
    make_training_round,
)

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
        version = {n: make_policy_version(s, number=n, status=PolicyStatus.archived) for n in (1, 2, 3)}

        def pair(prompt_id: int, a: str, b: str, versions: tuple[int, int] = (1, 2), **gold) -> int:
            return make_comparison(
                s,
                prompt_id=prompt_id,
                text_a=a,
                text_b=b,
                version_a_id=version[versions[0]],
                version_b_id=version[versions[1]],
                finish_reasons=("eos", "length"),
                **gold,
            )

        c1 = pair(make_prompt(s, text="Name a colour."), "Blue.", "Green.")
        c2 = pair(make_prompt(s, text="Say hi."), "Hi!", "Hello there.")
        c3 = pair(make_prompt(s, text="Count to three."), "1 2 3", "one two three", (2, 3))
        c4 = pair(make_prompt(s, text="What is 2+2?"), "4", "5", (2, 3), is_gold=True, gold_choice=Choice.a)
        story = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Tell a story."},
            {"role": "assistant", "content": "Once upon a time."},
            {"role": "user", "content": "And then?"},
        ]
        c5 = pair(make_prompt(s, messages=story), "They lived.", "The end.", (3, 1))
        plan = [  # pair, annotator, choice, shown left, strength, rationale
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
            make_judgment(
                s,
                comparison_id=c,
                annotator_id=users[who],
                choice=choice,
                shown_left=left,
                strength=strength,
                rationale=why,
                time_spent_ms=1500,
                channel="api",
                created_at=T0 + timedelta(hours=i),
            )
            for i, (c, who, choice, left, strength, why) in enumerate(plan)
        ]
        rounds = {
            "r1": make_training_round(s, snapshot_max_judgment_id=judgments[2]),
            "r2": make_training_round(s, snapshot_max_judgment_id=judgments[5]),
            "r3": make_training_round(s, status=RoundStatus.queued),
        }
        return World(users, {"c1": c1, "c2": c2, "c3": c3, "c4": c4, "c5": c5}, judgments, rounds)


@pytest.fixture
def world(db, admin_token) -> World:
    return build_world(db)
