"""The rows tests arrange: accounts and tokens, prompts, policy versions, pairs and judgments.

Plain functions with keyword arguments and defaults that return ids. Each takes the app's `Database`
(one transaction per call) or an open `Session` (many rows in one transaction, for bulk data). Rows are
written through the app's own services where one writes them, each service called from one place here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.auth.models import Role, Scope, User
from app.comparisons import service as comparisons_service
from app.comparisons.models import Choice, Comparison, ComparisonStatus
from app.comparisons.schemas import NewCompletion
from app.core.config import Settings
from app.core.db import Database, utcnow
from app.core.security import hash_password
from app.judgments.models import Judgment
from app.policies import registry
from app.policies import service as policies_service
from app.policies.models import PolicyStatus
from app.prompts import service as prompts_service
from app.prompts.models import Prompt
from app.prompts.schemas import PromptIn
from app.rollout import service as rollout_service
from app.training.models import RoundStatus, TrainingRound

PASSWORD = "correct horse battery"


@contextmanager
def _session(db: Database | Session) -> Iterator[Session]:
    if isinstance(db, Session):
        yield db
    else:
        with db.session() as session:
            yield session


# --- accounts ---------------------------------------------------------------------------------


@cache
def _password_hash(password: str) -> str:
    return hash_password(password)


def make_user(
    db: Database | Session, username: str, *, role: Role = Role.annotator, password: str = PASSWORD, **columns
) -> int:
    """An account that signs in with `password`; `columns` sets others (is_active, excluded_from_training)."""
    # Written straight rather than through auth's create: password hashing is deliberately slow, and
    # hashing each password once per test session keeps tests with many accounts fast.
    with _session(db) as session:
        user = User(username=username, password_hash=_password_hash(password), role=role, **columns)
        session.add(user)
        session.flush()
        return user.id


def make_annotators(db: Database | Session, n: int, *, prefix: str = "annotator") -> list[int]:
    """n annotator accounts named prefix0, prefix1, ..."""
    with _session(db) as session:
        return [make_user(session, f"{prefix}{i}") for i in range(n)]


def make_token(db: Database | Session, username: str, *, scopes: Iterable[Scope] | None = None) -> str:
    """An API token for username with these scopes (default: all its role allows)."""
    with _session(db) as session:
        user = auth_service.get_by_username(db=session, username=username)
        return auth_service.create_token(db=session, user=user, name="test", scopes=scopes)[1]


# --- prompts ----------------------------------------------------------------------------------


def make_prompt(
    db: Database | Session,
    *,
    text: str | None = None,
    messages: list[dict] | None = None,
    active: bool = True,
    source: str = "test",
) -> int:
    """A prompt imported by the prompts service: one user turn `text`, or a conversation `messages`
    (default: a new question). An equal prompt already stored is returned as it is."""
    row = PromptIn(messages=messages or [{"role": "user", "content": text or f"Question {uuid.uuid4().hex[:8]}?"}])
    with _session(db) as session:
        report = prompts_service.import_prompts(db=session, rows=[row], source=source, max_chars=1_000_000)
        content_hash = prompts_service.content_hash(prompts_service.normalize(row))
        prompt_id = session.scalar(select(Prompt.id).where(Prompt.content_hash == content_hash))
        if report.created and not active:
            prompts_service.deactivate(db=session, prompt_id=prompt_id)
        return prompt_id


# --- policy versions --------------------------------------------------------------------------


def make_policy_version(
    db: Database | Session,
    *,
    number: int = 1,
    status: PolicyStatus = PolicyStatus.active,
    path: Path | str | None = None,
    parent_id: int | None = None,
    source: str = "test",
    metrics: dict | None = None,
) -> int:
    """A policy version recorded by the policies service; its `path` need not exist unless the test
    loads the model (see publish_policy_version)."""
    with _session(db) as session:
        return policies_service.record_policy_version(
            db=session,
            number=number,
            path=path or f"/registry/policy/{number}",
            parent_id=parent_id,
            source=source,
            status=status,
            metrics=metrics or {},
        ).id


def publish_policy_version(
    settings: Settings,
    db: Database | Session,
    *,
    source_dir: Path,
    number: int = 1,
    status: PolicyStatus = PolicyStatus.active,
    parent_id: int | None = None,
    source: str = "test",
    metrics: dict | None = None,
) -> int:
    """source_dir published to the test's registry as policy version `number`, and recorded."""
    path = registry.publish(
        registry_dir=settings.registry_dir,
        kind="policy",
        number=number,
        source_dir=source_dir,
        manifest={"parent": parent_id},
    )
    return make_policy_version(
        db, number=number, status=status, path=path, parent_id=parent_id, source=source, metrics=metrics
    )


def _first_version_id(session: Session) -> int:
    """Policy version 1, recorded (active) when missing: the default author of a pair's completions."""
    version = policies_service.get_by_number(db=session, number=1)
    return version.id if version is not None else make_policy_version(session, number=1)


# --- pairs and judgments ----------------------------------------------------------------------


def make_comparison(
    db: Database | Session,
    *,
    prompt_id: int | None = None,
    version_a_id: int | None = None,
    version_b_id: int | None = None,
    text_a: str | None = None,
    text_b: str | None = None,
    finish_reasons: tuple[str, str] = ("eos", "eos"),
    overlap_target: int = 1,
    is_gold: bool = False,
    gold_choice: Choice | None = None,
    status: ComparisonStatus = ComparisonStatus.ready,
    judgment_count: int = 0,
) -> int:
    """A pair stored by the comparisons service. Defaults: a new prompt, both completions by version 1
    (recorded active when missing), texts that name the pair and the side ("<tag> answer a")."""
    tag = uuid.uuid4().hex
    with _session(db) as session:
        prompt_id = prompt_id or make_prompt(session)
        version_a_id = version_a_id or _first_version_id(session)
        completions = [
            NewCompletion(
                policy_version_id=version_id,
                text=text,
                token_count=len(text.split()),
                finish_reason=finish_reason,
                sampling={},
            )
            for version_id, text, finish_reason in zip(
                (version_a_id, version_b_id or version_a_id),
                (text_a or f"{tag} answer a", text_b or f"{tag} answer b"),
                finish_reasons,
                strict=True,
            )
        ]
        comparison = comparisons_service.create(
            db=session, prompt_id=prompt_id, a=completions[0], b=completions[1], overlap=overlap_target
        )
        comparison.is_gold, comparison.gold_choice = is_gold, gold_choice
        comparison.status, comparison.judgment_count = status, judgment_count
        session.flush()
        return comparison.id


def make_comparisons(db: Database | Session, n: int, **pair) -> list[int]:
    """n pairs made by make_comparison, each of a new prompt; their ids in creation order."""
    with _session(db) as session:
        return [make_comparison(session, **pair) for _ in range(n)]


def make_judgment(
    db: Database | Session,
    *,
    comparison_id: int,
    annotator_id: int,
    choice: Choice | str = Choice.a,
    shown_left: str = "a",
    strength: int | None = None,
    rationale: str = "",
    time_spent_ms: int | None = None,
    channel: str = "browser",
    created_at: datetime | None = None,
) -> int:
    """A judgment stored as the judgments service leaves one: the pair's count goes up, and the pair
    completes when it reaches its overlap target."""
    # Written straight: the service takes a judgment only on a pair the annotator holds now, and tests
    # need judgments by many annotators at chosen times.
    with _session(db) as session:
        judgment = Judgment(
            comparison_id=comparison_id,
            annotator_id=annotator_id,
            choice=Choice(choice),
            shown_left=shown_left,
            strength=strength,
            rationale=rationale,
            time_spent_ms=time_spent_ms,
            channel=channel,
        )
        if created_at is not None:
            judgment.created_at = created_at
        session.add(judgment)
        comparison = session.get(Comparison, comparison_id)
        comparison.judgment_count += 1
        if comparison.judgment_count >= comparison.overlap_target:
            comparison.status = ComparisonStatus.completed
        session.flush()
        return judgment.id


def make_judged_pair(
    db: Database | Session,
    *,
    annotator_id: int,
    choice: Choice | str = Choice.a,
    strength: int | None = None,
    prompt: str | None = None,
    prompt_active: bool = True,
    **pair,
) -> int:
    """A new pair (make_comparison; `prompt` text reuses an equal stored prompt) judged once by
    annotator_id; the judgment's id."""
    with _session(db) as session:
        prompt_id = make_prompt(session, text=prompt, active=prompt_active)
        return make_judgment(
            session,
            comparison_id=make_comparison(session, prompt_id=prompt_id, **pair),
            annotator_id=annotator_id,
            choice=choice,
            strength=strength,
        )


# --- training rounds --------------------------------------------------------------------------


def make_training_round(
    db: Database | Session,
    *,
    status: RoundStatus = RoundStatus.succeeded,
    snapshot_max_judgment_id: int | None = None,
    **columns,
) -> int:
    """A round in `status` whose snapshot ended at snapshot_max_judgment_id; `columns` sets others."""
    # Written straight: the training service moves a round only through a worker's steps, which
    # tests/admin/seed.py drives where the steps themselves matter.
    with _session(db) as session:
        round_ = TrainingRound(status=status, snapshot_max_judgment_id=snapshot_max_judgment_id, **columns)
        session.add(round_)
        session.flush()
        return round_.id


# --- rollouts ---------------------------------------------------------------------------------


def start_rollout(settings: Settings, db: Database | Session, *, candidate_id: int, share: float = 0.5) -> int:
    """A human-gated rollout of candidate_id against its parent (which must be active), started now."""
    with _session(db) as session:
        candidate = policies_service.get_or_raise(db=session, version_id=candidate_id)
        rollout, refused = rollout_service.start(
            db=session, settings=settings, candidate=candidate, share=share, now=utcnow()
        )
        assert rollout is not None, refused
        return rollout.id
