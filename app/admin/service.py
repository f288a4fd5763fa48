"""What the admin console changes: site-wide settings (the annotation guidelines) and gold comparisons."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.admin.models import SiteSetting
from app.auth.models import User
from app.comparisons.models import Choice, Comparison
from app.core.db import utcnow
from app.core.errors import NotFound, Unprocessable
from app.judgments.models import Judgment

GUIDELINES_KEY = "guidelines"
GUIDELINES_MAX_CHARS = 50_000


def get_guidelines(*, db: Session) -> str:
    """The annotation guidelines as Markdown; empty when no admin has written any."""
    setting = db.get(SiteSetting, GUIDELINES_KEY)
    markdown = setting.value.get("markdown", "") if setting is not None else ""
    return markdown if isinstance(markdown, str) else ""


def set_guidelines(*, db: Session, markdown: str) -> SiteSetting:
    """Replace the annotation guidelines (Markdown; rendered with raw HTML escaped)."""
    if len(markdown) > GUIDELINES_MAX_CHARS:
        raise Unprocessable(
            f"Guidelines are limited to {GUIDELINES_MAX_CHARS} characters (got {len(markdown)}).",
            loc=("body", "markdown"),
        )
    setting = db.get(SiteSetting, GUIDELINES_KEY)
    if setting is None:
        setting = SiteSetting(key=GUIDELINES_KEY, value={"markdown": markdown})
        db.add(setting)
    else:
        # A new dict (not an in-place edit) so the JSON column is seen as changed.
        setting.value = {"markdown": markdown}
        setting.updated_at = utcnow()
    db.flush()
    return setting


# --- gold comparisons ------------------------------------------------------------------------------
# A gold comparison has a known right answer; annotators' accuracy on gold measures their quality.


def get_comparison_or_raise(*, db: Session, comparison_id: int) -> Comparison:
    comparison = db.get(Comparison, comparison_id)
    if comparison is None:
        raise NotFound(f"Comparison {comparison_id} does not exist.", loc=("comparison_id",))
    return comparison


def set_gold(*, db: Session, comparison_id: int, choice: str) -> Comparison:
    """Mark a comparison as gold with its expected answer (a | b | tie | both_bad, in completion terms)."""
    if choice not in Choice.__members__:
        raise Unprocessable(
            f"Expected answer must be one of {', '.join(Choice.__members__)} (got {choice!r}).",
            loc=("choice",),
        )
    comparison = get_comparison_or_raise(db=db, comparison_id=comparison_id)
    comparison.is_gold = True
    comparison.gold_choice = Choice(choice)
    db.flush()
    return comparison


def clear_gold(*, db: Session, comparison_id: int) -> Comparison:
    """Make a gold comparison an ordinary one again; its judgments stay as they are."""
    comparison = get_comparison_or_raise(db=db, comparison_id=comparison_id)
    comparison.is_gold = False
    comparison.gold_choice = None
    db.flush()
    return comparison


def list_gold(*, db: Session) -> list[Comparison]:
    """Every gold comparison, newest first, with its prompt loaded."""
    return list(
        db.scalars(
            select(Comparison)
            .where(Comparison.is_gold.is_(True))
            .options(selectinload(Comparison.prompt))
            .order_by(Comparison.id.desc())
        )
    )


def list_recent_comparisons(*, db: Session, limit: int) -> list[Comparison]:
    """The newest comparisons that are not gold yet: candidates an admin may mark."""
    return list(
        db.scalars(
            select(Comparison)
            .where(Comparison.is_gold.is_(False))
            .options(selectinload(Comparison.prompt))
            .order_by(Comparison.id.desc())
            .limit(limit)
        )
    )


def list_judgments(*, db: Session, comparison_id: int) -> list[tuple[Judgment, str]]:
    """The judgments of one comparison, oldest first, each with its annotator's username."""
    return list(
        db.execute(
            select(Judgment, User.username)
            .join(User, Judgment.annotator_id == User.id)
            .where(Judgment.comparison_id == comparison_id)
            .order_by(Judgment.id)
        ).all()
    )
