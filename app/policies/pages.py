"""The console's policy versions (/admin/policies): lineage, producing round, people's ratings, and
activation (a rollback when the version is an earlier one)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.api.deps import CsrfChecked, IdPath, SessionDep
from app.core.pages import console_page, redirect_with_flash, rerender_if_refused
from app.policies import service
from app.ratings import service as ratings_service
from app.training import service as training_service

router = APIRouter()


def _policies_context(db: Session) -> dict[str, Any]:
    versions = service.list_versions(db=db)
    leaderboard = ratings_service.leaderboard(db=db)
    return {
        "versions": versions,
        "lineage": {v.id: [a.number for a in service.lineage(db=db, version=v)] for v in versions},
        "rounds": training_service.producing_rounds(db=db, version_ids=[v.id for v in versions]),
        "active": service.get_active(db=db),
        "ratings": {row.version_id: row for row in leaderboard},
        "min_battles": ratings_service.MIN_BATTLES,
        "chart_points": [
            {"version": row.number, "rating": row.rating, "low": row.rating_low, "high": row.rating_high}
            for row in sorted(leaderboard, key=lambda row: row.number)
            if row.enough_battles
        ],
    }


@router.get("/policies")
def policies(request: Request, db: SessionDep) -> Response:
    return console_page(request, "policies", _policies_context(db))


@router.post("/policies/{version_id}/activate", dependencies=[CsrfChecked])
def activate_policy(request: Request, version_id: IdPath, db: SessionDep) -> Response:
    with rerender_if_refused("policies", _policies_context):
        version = service.activate(db=db, version_id=version_id)
    message = f"Policy v{version.number} is active; the sampler switches to it."
    return redirect_with_flash(request, "/admin/policies", message)
