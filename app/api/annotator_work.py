"""How the annotation routes (queue, judgments, /annotate) run their work: authentication, the service
calls and the commit of one write unit of work per request, in a single trip to the thread pool.

    pair = await work.run(lambda db, annotator: queue_service.next_for(db=db, annotator_id=annotator.id, ...))

Why not the usual SessionDep + ApiUser + sync handler: every sync dependency and its exit is its own
trip between the event loop and a worker thread (seven per request here), and on a busy 2-core machine
each trip waits for the OS scheduler: a 3 ms unit of work took 30 ms (docs/benchmarks.md). The
work is not run on the event loop itself either: it may wait for a database lock held by a request
whose commit needs the loop, which would stall the whole process.

SQLite has one writer at a time, and its own busy handler waits for the lock by sleeping and polling
(1, 2, 5 ... 100 ms), which under 32 concurrent annotators turns a 2 ms transaction into a 100 ms
wait. So on SQLite these units of work take turns, first come first served, for a single thread-pool
slot (anyio's CapacityLimiter queues fairly): each starts the moment the previous one has committed.
They begin with BEGIN IMMEDIATE, taking SQLite's write lock before anything is read, so the queue's
pick (read, then lock) is exact and a read never fails to upgrade to a write ("database is locked")
against writers outside this path. PostgreSQL needs neither (the services take the row locks they
need) and gets a few slots (POSTGRES_TURNS).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, FastAPI, Request
from sqlalchemy.orm import Session

from app.api.deps import api_user, page_user
from app.auth.models import User

T = TypeVar("T")


# PostgreSQL runs several units of work at once, but few: their time is mostly round trips, which a
# handful of threads already overlap, while every extra runnable thread competes for the GIL with the
# event loop that reads requests and writes responses.
POSTGRES_TURNS = 4


def _turns(app: FastAPI) -> anyio.CapacityLimiter:
    """The app's slots for annotation units of work (created on first use, on the event loop)."""
    if getattr(app.state, "annotation_turns", None) is None:
        app.state.annotation_turns = anyio.CapacityLimiter(1 if app.state.db.is_sqlite else POSTGRES_TURNS)
    return app.state.annotation_turns


@dataclass(frozen=True)
class AnnotatorWork:
    """Runs a unit of work for the request's annotator: `await work.run(lambda db, annotator: ...)`."""

    request: Request
    # The same check as the route dependencies ApiUser (api_user) or PageUser (page_user), run inside
    # the unit of work because the credential is read from the database.
    authenticate: Callable[[Request, Session], User]

    async def run(self, work: Callable[[Session, User], T]) -> T:
        """work(db, annotator) in a worker thread, once the request is authenticated; committed before it returns."""
        return await anyio.to_thread.run_sync(self._run, work, limiter=_turns(self.request.app))

    def _run(self, work: Callable[[Session, User], T]) -> T:
        with self.request.app.state.db.write_session() as db:
            return work(db, self.authenticate(self.request, db))


async def _api_work(request: Request) -> AnnotatorWork:
    return AnnotatorWork(request, authenticate=api_user)


async def _page_work(request: Request) -> AnnotatorWork:
    return AnnotatorWork(request, authenticate=page_user)


# For JSON routes: a bearer token or the browser session with its CSRF header (401/403 otherwise).
ApiWork = Annotated[AnnotatorWork, Depends(_api_work)]
# For browser pages: the signed-in session (an anonymous browser is sent to the login page).
PageWork = Annotated[AnnotatorWork, Depends(_page_work)]
