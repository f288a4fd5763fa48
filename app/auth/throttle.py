"""Failed sign-ins and bad API tokens, counted per key in a table every web worker shares: the only
module that reads or writes login_throttle.

A key that collects its allowance of failures within the window makes each further attempt wait,
twice as long after every new failure and never longer than a cap: a backoff, not a lock that also
refuses the right password for good. Keys hold the typed username, not the account, so a username
that exists and one that does not are throttled exactly alike.
"""

from __future__ import annotations

import hashlib
import math
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.auth.models import LoginThrottle
from app.core.config import Settings
from app.core.db import utcnow


@dataclass(frozen=True)
class Limit:
    key: str
    allowance: int  # failures before attempts under this key start to wait

    @property
    def key_hash(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()


def login_limits(settings: Settings, *, client: str, username: str) -> list[Limit]:
    """One address guessing one username waits soonest; one address across usernames later; one
    username across all addresses much later, so an attacker's failures from elsewhere rarely slow
    the owner down."""
    name = username.strip().casefold()
    return [
        Limit(f"login:client+username:{client}\n{name}", settings.LOGIN_FAILURES_PER_CLIENT_USERNAME),
        Limit(f"login:client:{client}", settings.LOGIN_FAILURES_PER_CLIENT),
        Limit(f"login:username:{name}", settings.LOGIN_FAILURES_PER_USERNAME),
    ]


def token_limits(settings: Settings, *, client: str) -> list[Limit]:
    return [Limit(f"token:client:{client}", settings.TOKEN_FAILURES_PER_CLIENT)]


def retry_after_s(*, db: Session, limits: list[Limit]) -> int:
    """Seconds until every key of limits takes attempts again; 0 when none waits."""
    now = utcnow()
    # The comparison with now leaves no NULL, which the column's type (datetime | None) cannot say.
    blocked = typing.cast(
        Iterable[datetime],
        db.scalars(
            select(LoginThrottle.blocked_until).where(
                LoginThrottle.key_hash.in_([limit.key_hash for limit in limits]),
                LoginThrottle.blocked_until > now,
            )
        ),
    )
    return max((math.ceil((until - now).total_seconds()) for until in blocked), default=0)


def record_failure(*, db: Session, settings: Settings, limits: list[Limit]) -> None:
    """Count one failure under every key of limits and start or lengthen their wait."""
    now = utcnow()
    window_start = now - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_S)
    # Keys quiet for a whole window are forgotten, which also keeps the table small.
    db.execute(
        delete(LoginThrottle).where(
            LoginThrottle.last_failure_at < window_start,
            or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until < now),
        )
    )
    by_hash = {limit.key_hash: limit for limit in limits}
    # Two workers may count the first failure of one key at once: insert-if-missing, then lock the rows
    # (in key order, as the locking select does, so two attempts never wait for each other in a cycle).
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    db.execute(
        insert(LoginThrottle)
        .values([{"key_hash": key_hash, "failures": 0, "last_failure_at": now} for key_hash in sorted(by_hash)])
        .on_conflict_do_nothing(index_elements=["key_hash"])
    )
    rows = db.scalars(
        select(LoginThrottle)
        .where(LoginThrottle.key_hash.in_(by_hash))
        .order_by(LoginThrottle.key_hash)
        .with_for_update()
    )
    for row in rows:
        row.failures += 1
        row.last_failure_at = now
        excess = row.failures - by_hash[row.key_hash].allowance
        if excess >= 0:
            row.blocked_until = now + _backoff(settings, excess)
    db.flush()


def _backoff(settings: Settings, excess: int) -> timedelta:
    seconds = settings.LOGIN_BACKOFF_S * 2 ** min(excess, 32)
    return timedelta(seconds=min(seconds, settings.LOGIN_BACKOFF_MAX_S))


def forgive(*, db: Session, limit: Limit) -> None:
    """Forget the failures under one key, e.g. an address's typos once it signs in."""
    db.execute(delete(LoginThrottle).where(LoginThrottle.key_hash == limit.key_hash))
