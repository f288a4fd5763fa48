"""How the annotation routes (queue, judgments, /annotate) run their work: one write unit of work per
request, with the signed-in annotator, in a single trip to the thread pool.

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
from functools import partial
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, FastAPI, Request

from app.api.deps import api_user, page_user
from app.core.config import Settings

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
    """Runs a service call for the request's annotator: `await work.run(service.fn, **kwargs)`."""

    request: Request
    page: bool  # a browser page (redirect to the login page) rather than the JSON API (401/403)

    async def run(self, fn: Callable[..., T], /, **kwargs) -> T:
        """fn(db=..., annotator_id=..., **kwargs) in a worker thread, committed before it returns."""
        turns = _turns(self.request.app)
        return await anyio.to_thread.run_sync(partial(self._run, fn, kwargs), limiter=turns)

    def _run(self, fn: Callable[..., T], kwargs: dict) -> T:
        with self.request.app.state.db.write_session() as db:
            # The same rules as ApiUser (bearer token, or the session plus its CSRF header) / PageUser.
            user = page_user(self.request, db) if self.page else api_user(self.request, db)
            return fn(db=db, annotator_id=user.id, **kwargs)


async def _api_work(request: Request) -> AnnotatorWork:
    return AnnotatorWork(request, page=False)


async def _page_work(request: Request) -> AnnotatorWork:
    return AnnotatorWork(request, page=True)


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


ApiWork = Annotated[AnnotatorWork, Depends(_api_work)]
PageWork = Annotated[AnnotatorWork, Depends(_page_work)]
AppSettings = Annotated[Settings, Depends(_settings)]
