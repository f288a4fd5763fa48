"""What the admin console changes that belongs to no other domain: site-wide settings (the annotation guidelines)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.admin.models import SiteSetting
from app.core.db import utcnow
from app.core.errors import Unprocessable

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
