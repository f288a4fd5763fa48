"""Builders for pairs to annotate: prompts, completions and comparisons written straight with the ORM.

`make_comparisons(db, n)` needs nothing else in the database; the pairs belong to policy version 1
(active, path "/nonexistent"), created on first use.
"""

from __future__ import annotations

import uuid
from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import Role, User
from app.comparisons.models import Choice, Comparison, Completion
from app.core.db import Database
from app.core.security import hash_password
from app.policies.models import PolicyStatus, PolicyVersion
from app.prompts.models import Prompt
from tests.helpers import PASSWORD


def policy_version_id(session: Session) -> int:
    """Policy version 1 (active), created on first use."""
    version = session.scalar(select(PolicyVersion).where(PolicyVersion.number == 1))
    if version is None:
        version = PolicyVersion(number=1, path="/nonexistent", status=PolicyStatus.active)
        session.add(version)
        session.flush()
    return version.id


def make_comparisons(
    db: Database,
    n: int,
    *,
    overlap_target: int = 1,
    is_gold: bool = False,
    gold_choice: Choice | None = None,
    prompt_active: bool = True,
    messages: list[dict] | None = None,
    text_a: str | None = None,
    text_b: str | None = None,
) -> list[int]:
    """n ready comparisons, each of its own prompt; completion texts name the pair and side
    ("pair 3 answer a") unless given. Returns their ids in creation order."""
    ids = []
    with db.session() as session:
        version_id = policy_version_id(session)
        for _ in range(n):
            tag = uuid.uuid4().hex
            prompt_messages = messages or [{"role": "user", "content": f"Question {tag[:8]}?"}]
            prompt = Prompt(
                messages=prompt_messages,
                text=" ".join(m["content"] for m in prompt_messages),
                content_hash=tag + tag,
                is_active=prompt_active,
            )
            session.add(prompt)
            session.flush()
            completions = [
                Completion(
                    prompt_id=prompt.id,
                    policy_version_id=version_id,
                    text=text or f"{tag} answer {side}",
                    token_count=4,
                    finish_reason="eos",
                )
                for side, text in (("a", text_a), ("b", text_b))
            ]
            session.add_all(completions)
            session.flush()
            comparison = Comparison(
                prompt_id=prompt.id,
                completion_a_id=completions[0].id,
                completion_b_id=completions[1].id,
                overlap_target=overlap_target,
                is_gold=is_gold,
                gold_choice=gold_choice,
            )
            session.add(comparison)
            session.flush()
            ids.append(comparison.id)
    return ids


@cache
def _password_hash() -> str:
    return hash_password(PASSWORD)


def make_annotators(db: Database, n: int, prefix: str = "annotator") -> list[int]:
    """n annotator accounts (password helpers.PASSWORD), hashed once: many users stay cheap."""
    with db.session() as session:
        users = [User(username=f"{prefix}{i}", password_hash=_password_hash(), role=Role.annotator) for i in range(n)]
        session.add_all(users)
        session.flush()
        return [user.id for user in users]
