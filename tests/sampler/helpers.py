"""Builders for sampler tests: prompts and stored pairs without running a model."""

from __future__ import annotations

from app.comparisons import service as comparisons_service
from app.comparisons.models import ComparisonStatus
from app.comparisons.schemas import NewCompletion
from app.core.db import Database
from app.prompts import service as prompt_service
from app.prompts.schemas import PromptIn


def add_prompts(db: Database, *texts: str) -> list[int]:
    with db.session() as session:
        prompt_service.import_prompts(
            db=session, rows=[PromptIn(prompt=t) for t in texts], source="test", max_chars=10_000
        )
        items, _ = prompt_service.list_(db=session, limit=len(texts) + 1000)
        by_text = {p.text: p.id for p in items}
    return [by_text[t] for t in texts]


def add_pair(
    db: Database,
    prompt_id: int,
    version_id: int,
    *,
    version_b_id: int | None = None,
    status: ComparisonStatus = ComparisonStatus.ready,
    judgments: int = 0,
) -> int:
    """A stored comparison between completions of the given versions; its id."""

    def completion(version: int) -> NewCompletion:
        return NewCompletion(policy_version_id=version, text="reply", token_count=2, finish_reason="eos", sampling={})

    with db.session() as session:
        comparison = comparisons_service.create(
            db=session,
            prompt_id=prompt_id,
            a=completion(version_id),
            b=completion(version_b_id or version_id),
            overlap=1,
        )
        comparison.status, comparison.judgment_count = status, judgments
        return comparison.id
