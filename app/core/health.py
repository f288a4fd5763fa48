"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from app.core.migrations import current_revision, head_revision

router = APIRouter()


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> Response:
    """The database answers and its schema is at the migrations' head."""
    db = request.app.state.db
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        current = current_revision(db.engine)
    except Exception as exc:  # any driver error means "not ready", reported, not raised
        return JSONResponse({"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"}, 503)
    head = head_revision()
    if current != head:
        return JSONResponse({"status": "unavailable", "database": "ok", "migrations": f"{current} != head {head}"}, 503)
    return JSONResponse({"status": "ok", "database": "ok", "migrations": head})
