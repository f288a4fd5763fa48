"""The raw export, reproduced from the database independently (plain SQL, no app code) and compared.

"Every export can be reproduced from the judgments": a randomized world of annotators (one deactivated,
one excluded from training), versions, gold pairs, overlapping judgments and rounds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update

from app.auth.models import User
from app.comparisons.models import Choice
from app.policies.models import PolicyStatus
from app.training import snapshot as training_snapshot
from tests.factories import (
    make_annotators,
    make_comparison,
    make_judgment,
    make_policy_version,
    make_prompt,
    make_training_round,
)

WINNER = {"a": "model_a", "b": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}

RAW_SQL = """
SELECT j.id, j.comparison_id, j.annotator_id, j.choice, j.strength, j.rationale, j.shown_left,
       j.time_spent_ms,
       j.client_time_spent_ms, j.channel, j.created_at, c.prompt_id, c.completion_a_id, c.completion_b_id,
       c.is_gold, c.gold_choice, p.messages, p.content_hash, ca.text AS a_text, cb.text AS b_text,
       va.number AS a_version, vb.number AS b_version,
       (SELECT r.id FROM training_rounds r WHERE r.snapshot_max_judgment_id >= j.id
         ORDER BY r.snapshot_max_judgment_id, r.id LIMIT 1) AS round_id
FROM judgments j
JOIN comparisons c ON c.id = j.comparison_id
JOIN prompts p ON p.id = c.prompt_id
JOIN completions ca ON ca.id = c.completion_a_id
JOIN completions cb ON cb.id = c.completion_b_id
JOIN policy_versions va ON va.id = ca.policy_version_id
JOIN policy_versions vb ON vb.id = cb.policy_version_id
JOIN users u ON u.id = j.annotator_id
WHERE :everyone OR (u.is_active AND NOT u.excluded_from_training)
ORDER BY j.id
"""


def _utc(value) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _reproduce(db, *, secret: str, everyone: bool, test_fraction: float) -> list[dict]:
    with db.engine.connect() as connection:
        rows = connection.execute(text(RAW_SQL), {"everyone": everyone}).mappings().all()
    out = []
    for r in rows:
        messages = json.loads(r["messages"]) if isinstance(r["messages"], str) else r["messages"]
        created = _utc(r["created_at"])
        judge = (
            "ann_"
            + hmac.new(secret.encode(), f"annotator:{r['annotator_id']}".encode(), hashlib.sha256).hexdigest()[:16]
        )
        heldout = training_snapshot.split_of(r["content_hash"], test_fraction) == "eval"
        out.append(
            {
                "question_id": r["comparison_id"],
                "judgment_id": r["id"],
                "model_a": f"v{r['a_version']}",
                "model_b": f"v{r['b_version']}",
                "winner": WINNER[r["choice"]],
                "judge": judge,
                "conversation_a": [*messages, {"role": "assistant", "content": r["a_text"]}],
                "conversation_b": [*messages, {"role": "assistant", "content": r["b_text"]}],
                "turn": sum(m["role"] == "user" for m in messages),
                "anony": True,
                "tstamp": created.timestamp(),
                "created_at": created.isoformat().replace("+00:00", "Z"),
                "choice": r["choice"],
                "strength": r["strength"],
                "rationale": r["rationale"],
                "shown_left": r["shown_left"],
                "time_spent_ms": r["time_spent_ms"],
                "client_time_spent_ms": r["client_time_spent_ms"],
                "channel": r["channel"],
                "metadata": {
                    "prompt_id": r["prompt_id"],
                    "completion_a_id": r["completion_a_id"],
                    "completion_b_id": r["completion_b_id"],
                    "policy_version_a": r["a_version"],
                    "policy_version_b": r["b_version"],
                    "round_id": r["round_id"],
                    "split": "test" if heldout else "train",
                    "is_gold": bool(r["is_gold"]),
                    "gold_choice": r["gold_choice"],
                },
            }
        )
    return out


def _random_world(db, seed: int = 7) -> None:
    rng = random.Random(seed)
    annotators = make_annotators(db, 6, prefix="rater")
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    with db.session() as s:
        version = {n: make_policy_version(s, number=n, status=PolicyStatus.archived) for n in (1, 2, 3)}
        comparisons = []
        for i in range(40):
            messages = [{"role": "user", "content": f"Question {i}: {rng.random():.6f}?"}]
            if i % 5 == 0:
                messages = [{"role": "system", "content": "Answer in French."}, *messages]
            prompt_id = make_prompt(s, messages=messages)
            for _ in range(rng.choice((1, 2))):
                va, vb = rng.sample((1, 2, 3), 2)
                gold = rng.random() < 0.15
                comparisons.append(
                    make_comparison(
                        s,
                        prompt_id=prompt_id,
                        text_a=f"answer {rng.random():.4f} ✓",
                        text_b=f"réponse {rng.random():.4f}",
                        version_a_id=version[va],
                        version_b_id=version[vb],
                        finish_reasons=("eos", "length"),
                        is_gold=gold,
                        gold_choice=rng.choice(list(Choice)) if gold else None,
                    )
                )
        ids = []
        for n, comparison in enumerate(comparisons):
            for annotator in rng.sample(annotators, rng.choice((1, 1, 2, 3))):
                choice = rng.choice(list(Choice))
                ids.append(
                    make_judgment(
                        s,
                        comparison_id=comparison,
                        annotator_id=annotator,
                        choice=choice,
                        shown_left=rng.choice("ab"),
                        strength=rng.choice((None, 1, 2, 3)) if choice in (Choice.a, Choice.b) else None,
                        rationale=rng.choice(("", "more accurate", 'says "no"\nthen yes')),
                        time_spent_ms=rng.choice((None, rng.randrange(300, 90_000))),
                        created_at=t0
                        + timedelta(minutes=n, seconds=rng.randrange(60), microseconds=rng.randrange(10**6)),
                        channel="api",
                    )
                )
        ids.sort()
        make_training_round(s, snapshot_max_judgment_id=ids[len(ids) // 3])
        make_training_round(s, snapshot_max_judgment_id=ids[2 * len(ids) // 3])
        s.execute(update(User).where(User.id == annotators[0]).values(is_active=False))
        s.execute(update(User).where(User.id == annotators[1]).values(excluded_from_training=True))


@pytest.mark.parametrize("everyone", [True, False])
def test_raw_export_equals_an_independent_reproduction(client, db, admin_token, settings, everyone):
    _random_world(db)
    params = {"format": "raw", "include_inactive_annotators": str(everyone).lower(), "test_fraction": 0.3}
    response = client.get("/api/v1/export", params=params, headers=admin_token)
    exported = [json.loads(line) for line in response.text.splitlines()]
    expected = _reproduce(db, secret=settings.secret_key, everyone=everyone, test_fraction=0.3)
    assert len(expected) > 60
    assert exported == expected
