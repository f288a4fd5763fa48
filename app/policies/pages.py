"""The console's policy versions (/admin/policies): lineage, producing round, people's ratings, and
activation (a rollback when the version is an earlier one)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.api.deps import CsrfChecked, IdPath, PageAdmin, SessionDep, SettingsDep
from app.comparisons import service as comparisons_service
from app.core.config import Settings
from app.core.db import utcnow
from app.core.pages import confirm_page, console_page, local_target, redirect_with_flash, rerender_if_refused
from app.policies import service
from app.policies.models import PolicyVersion
from app.ratings import service as ratings_service
from app.rollout import service as rollout_service
from app.rollout.models import RolloutStatus
from app.training import round_view
from app.training import service as training_service
from trainer.contract import DISTINCT_1, DISTINCT_2, EOS_RATE, EVASION_RATE, RESPONSE_LENGTH, SIDE_EFFECTS
from trainer.side_effects import parent_and_new

router = APIRouter()

# The side-effect charts across versions: which figures each plots, labelled as the round page labels them.
SIDE_EFFECT_CHARTS = [
    {
        "id": "side-effect-shares",
        "title": "Side effects · shares",
        "percent": True,
        "series": [{"key": key, "label": round_view.SIDE_EFFECT_FIGURES[key][0]} for key in
                   (EVASION_RATE, DISTINCT_1, DISTINCT_2, EOS_RATE)],
    },
    {
        "id": "side-effect-length",
        "title": "Side effects · answer length (tokens)",
        "percent": False,
        "series": [{"key": RESPONSE_LENGTH, "label": round_view.SIDE_EFFECT_FIGURES[RESPONSE_LENGTH][0]}],
    },
]  # fmt: skip


def activation_message(db: Session, settings: Settings, version: PolicyVersion) -> tuple[str, str]:
    """(what activating `version` will do, in words with the real numbers; the button that does it)."""
    active = service.get_active(db=db)
    if active is None:
        return (
            f"Activate v{version.number}? The sampler starts generating pairs with it.",
            f"Activate v{version.number}",
        )
    rollback = version.number < active.number
    label = f"Roll back to v{version.number}" if rollback else f"Activate v{version.number}"
    retiring = comparisons_service.count_superseded(
        db=db, active_version_id=version.id, mode=settings.SAMPLER_RETIRE_ON_SWITCH
    )
    pairs = f"{retiring} ready pair{'' if retiring == 1 else 's'}"
    fate = (
        f"{pairs} from v{active.number} keep serving until the sampler has {settings.SAMPLER_LOW_WATER} of "
        f"v{version.number}'s ready, then retire (their judgments stay)."
        if retiring
        else "No ready pairs retire."
    )
    return (
        f"{label}? v{active.number} stops serving: the sampler generates with v{version.number} from now on. {fate}",
        label,
    )


def side_effects_by_version(versions: list[PolicyVersion]) -> list[dict[str, Any]]:
    """Per version, oldest first, its side effects on held-out answers (trainer/contract.py SIDE_EFFECTS): a
    version a round made has them in its metrics (the evaluate stage's results); a version no round made (the
    base) has the parent's side of the first round trained from it. Versions with neither are left out."""
    by_id = {v.id: v for v in versions}
    figures: dict[int, dict[str, float | None]] = {}
    for version in sorted(versions, key=lambda v: v.number):
        measured = {name: parent_and_new(version.metrics or {}, name) for name in SIDE_EFFECTS}
        if any(new is not None for _, new in measured.values()):
            figures[version.number] = {name: new for name, (_, new) in measured.items()}
        parent = by_id.get(version.parent_id) if version.parent_id is not None else None
        if parent is not None and parent.number not in figures and any(p is not None for p, _ in measured.values()):
            figures[parent.number] = {name: p for name, (p, _) in measured.items()}
    return [{"version": number, **figures[number]} for number in sorted(figures)]


def _policies_context(db: Session) -> dict[str, Any]:
    versions = service.list_versions(db=db)
    leaderboard = ratings_service.leaderboard(db=db)
    version_ids = [v.id for v in versions]
    rollouts = {
        version_id: rollout_service.to_read(db=db, rollout=rollout)
        for version_id, rollout in rollout_service.latest_for(db=db, version_ids=version_ids).items()
    }
    return {
        "versions": versions,
        "lineage": {v.id: [a.number for a in service.lineage(db=db, version=v)] for v in versions},
        "rounds": training_service.producing_rounds(db=db, version_ids=version_ids),
        "activation": training_service.activation_verdicts(db=db, version_ids=version_ids),
        "rollouts": rollouts,
        "running_rollout": next((r for r in rollouts.values() if r.status is RolloutStatus.running), None),
        "active": service.get_active(db=db),
        "ratings": {row.version_id: row for row in leaderboard},
        "min_battles": ratings_service.MIN_BATTLES,
        "chart_points": [
            {"version": row.number, "rating": row.rating, "low": row.rating_low, "high": row.rating_high}
            for row in sorted(leaderboard, key=lambda row: row.number)
            if row.enough_battles
        ],
        "side_effect_points": side_effects_by_version(versions),
        "side_effect_charts": SIDE_EFFECT_CHARTS,
    }


@router.get("/policies")
def policies(request: Request, db: SessionDep) -> Response:
    return console_page(request, "policies", _policies_context(db))


@router.post("/policies/{version_id}/activate", dependencies=[CsrfChecked])
def activate_policy(
    request: Request,
    version_id: IdPath,
    db: SessionDep,
    settings: SettingsDep,
    admin: PageAdmin,
    confirmed: Annotated[bool, Form()] = False,
) -> Response:
    with rerender_if_refused("policies", _policies_context):
        if not confirmed:
            message, label = activation_message(db, settings, service.get_or_raise(db=db, version_id=version_id))
            return confirm_page(
                request,
                message=message,
                action=f"/admin/policies/{version_id}/activate",
                confirm_label=label,
                back="/admin/policies",
                section="policies",
            )
        version = rollout_service.activate(db=db, version_id=version_id, admin=admin, now=utcnow())
    message = f"Policy v{version.number} is active; the sampler switches to it."
    return redirect_with_flash(request, "/admin/policies", message)


@router.post("/rollouts/{rollout_id}/stop", dependencies=[CsrfChecked])
async def stop_rollout(request: Request, rollout_id: IdPath, db: SessionDep, admin: PageAdmin) -> Response:
    """End a running rollout by hand; the page it was stopped from (the round's or this one) shows it."""
    back = local_target(str((await request.form()).get("next", "")), "/admin/policies", within="/admin/")
    with rerender_if_refused("policies", _policies_context):
        rollout = rollout_service.stop(db=db, rollout_id=rollout_id, admin=admin, now=utcnow())
    candidate = service.get_or_raise(db=db, version_id=rollout.candidate_id)
    message = f"The rollout of v{candidate.number} is stopped; v{candidate.number} stays a candidate."
    return redirect_with_flash(request, back, message)
