"""Dependencies of the annotation routes (queue, judgments, the /annotate page): one write unit of work
per request, and the signed-in user read inside it.

These routes run on the event loop, not in the thread pool. Their work is a handful of short
statements (2-4 ms), never a wait on anything slow, and with sync dependencies each request crossed
between the loop and worker threads seven times; on a busy 2-core machine each crossing waits for the
OS scheduler, which made a 3 ms request take 30 ms (bench/bench_annotation.py). Running inline also
means one worker process handles these units of work strictly one after another, which is what SQLite
needs anyway (one writer) and leaves no half-done transaction of this process for another to wait on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.api.deps import api_user, page_user
from app.auth.models import User
from app.core.config import Settings


async def write_session(request: Request) -> AsyncIterator[Session]:
    """A unit of work begun for writing before anything is read; committed before the response is sent.

    On SQLite it begins with BEGIN IMMEDIATE: the write lock is taken up front, so the queue's pick
    (read, then lock) is exact and a read can never fail to upgrade to a write ("database is locked").
    On PostgreSQL it is an ordinary transaction; the services take the row locks they need.
    """
    with request.app.state.db.session() as session:
        session.connection(execution_options={"sqlite_begin": "BEGIN IMMEDIATE"})
        yield session


WriteSession = Annotated[Session, Depends(write_session, scope="function")]


async def _api_annotator(request: Request, db: WriteSession) -> User:
    """The API's rules (bearer token, or the browser session plus its CSRF header), inside the unit of work."""
    return api_user(request, db)


async def _page_annotator(request: Request, db: WriteSession) -> User:
    """A signed-in browser (else a redirect to the login page), inside the unit of work."""
    return page_user(request, db)


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


ApiAnnotator = Annotated[User, Depends(_api_annotator)]
PageAnnotator = Annotated[User, Depends(_page_annotator)]
AppSettings = Annotated[Settings, Depends(_settings)]
