"""The console's training rounds (/admin/rounds): the list, the launch form, one round's live page, and
cancel and retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.api.deps import CsrfChecked, IdPath, PageAdmin, SessionDep, SettingsDep
from app.auth import service as auth_service
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import Conflict, InvalidState
from app.core.pages import confirm_page, console_page, redirect_with_flash, rerender_if_refused
from app.core.templates import render
from app.ratings import service as ratings_service
from app.rollout import service as rollout_service
from app.rollout.schemas import RolloutRead
from app.training import round_form, round_view, service, snapshot
from app.training.models import RoundStatus
from app.training.plan import RoundPlan, plan_round
from app.training.schemas import RoundConfig, RoundRead
from trainer import metrics as M
from trainer.contract import STAGE_ORDER

router = APIRouter()

# The live charts of a round's page: which logged values each one plots (names from trainer.metrics,
# the metrics.jsonl contract between the trainer and the app).
ROUND_CHARTS = [
    {
        "id": "rm-accuracy",
        "title": "Reward model · accuracy",
        "stage": "reward_model",
        "series": [{"key": M.RM_TRAIN_ACCURACY, "label": "train batch accuracy"}],
        # The number that matters is on held-out pairs, once the stage ends, against its gate.
        "note": {"result": M.RM_EVAL_ACCURACY, "gate": "min_rm_accuracy", "label": "held-out"},
    },
    {
        "id": "rm-loss",
        "title": "Reward model · loss",
        "stage": "reward_model",
        "series": [
            {"key": M.RM_TRAIN_LOSS, "label": "train loss"},
            # measured on the validation slice of the training prompts; its lowest point is the model kept
            {"key": M.RM_VALID_LOSS, "label": "validation loss"},
        ],
    },
    {
        "id": "ppo-reward",
        "title": "PPO · reward",
        "stage": "ppo",
        "series": [
            {"key": M.OBJECTIVE_RLHF_REWARD, "label": "RLHF reward"},
            {"key": M.OBJECTIVE_SCORES, "label": "RM score"},
        ],
    },
    {
        "id": "ppo-kl",
        "title": "PPO · KL to the reference",
        "stage": "ppo",
        "series": [{"key": M.OBJECTIVE_KL, "label": "KL"}],
    },
    {
        "id": "ppo-entropy",
        "title": "PPO · entropy",
        "stage": "ppo",
        "series": [{"key": M.OBJECTIVE_ENTROPY, "label": "entropy"}],
    },
    {
        "id": "ppo-clipfrac",
        "title": "PPO · clip fraction",
        "stage": "ppo",
        "series": [{"key": M.POLICY_CLIPFRAC_AVG, "label": "policy"}, {"key": M.VAL_CLIPFRAC_AVG, "label": "value"}],
    },
]


def _rounds_context(
    db: Session,
    settings: Settings,
    submitted: dict[str, str] | None = None,
    plan: RoundPlan | None = None,
    default: RoundPlan | None = None,
) -> dict[str, Any]:
    """The rounds page; `plan` is the one the form's Check asked for (the default round's otherwise).
    `default`: the default round's plan when the caller has it already (each plan reads every judgment)."""
    rounds, total = service.list_(db=db, limit=settings.ADMIN_PAGE_SIZE)
    default = default or plan_round(db=db, settings=settings, overrides={})
    shown = plan or default
    return {
        "rounds": [service.to_read(db=db, round_=r) for r in rounds],
        "total": total,
        "in_flight": service.in_flight(db=db),
        "new_judgments": snapshot.count_usable_judgments(
            db=db,
            after_id=service.highest_snapshotted_judgment_id(db=db),
            include_ties=default.config.data.include_ties,
        ),
        "sections": round_form.sections(
            default.config.model_dump(), RoundConfig.model_json_schema(), submitted, derived=shown.derived
        ),
        "plan": shown,
        "checked": plan is not None,
        "names": {u.id: u.username for u in auth_service.list_(db=db)},
        "stages_count": len(STAGE_ORDER),
    }


def _round_context(db: Session, settings: Settings, round_id: int) -> dict[str, Any]:
    round_ = service.to_read(db=db, round_=service.get_or_raise(db=db, round_id=round_id))
    requester = auth_service.get(db=db, user_id=round_.requested_by_id) if round_.requested_by_id else None
    return {
        "round": round_,
        "vs_parent": ratings_service.against_parent(db=db, version_id=round_.policy_version_id)
        if round_.policy_version_id
        else None,
        "requester": requester.username if requester else None,
        "progress_line": round_view.progress_line(round_, round_.stage_states),
        "gates": round_view.gate_rows(
            results=round_.results,
            gates_config=round_.config.get("gates", {}),
            live=round_.status.value in round_view.LIVE_STATUSES,
        ),
        "activation": round_.results.get("activation"),
        "rollout": _rollout_of(db, round_.policy_version_id),
        "charts": ROUND_CHARTS,
        "poll_ms": int(settings.ADMIN_POLL_S * 1000),
    }


def _rollout_of(db: Session, version_id: int | None) -> RolloutRead | None:
    """The latest human-gated rollout of the version a round published, if it had one."""
    rollout = rollout_service.latest_for(db=db, version_ids=[version_id]).get(version_id) if version_id else None
    return rollout_service.to_read(db=db, rollout=rollout) if rollout else None


@router.get("/rounds")
def rounds(request: Request, db: SessionDep, settings: SettingsDep) -> Response:
    return console_page(request, "rounds", _rounds_context(db, settings))


@router.post("/rounds", dependencies=[CsrfChecked])
async def launch_round(request: Request, db: SessionDep, settings: SettingsDep, admin: PageAdmin) -> Response:
    # The form's fields follow the configuration (app.training.schemas), so they are read as a whole. Its
    # Check button (action=check) shows the plan of the settings as entered, and queues nothing.
    fields = await request.form()
    form = {k: v for k, v in fields.items() if isinstance(v, str) and k not in ("csrf_token", "action")}
    with rerender_if_refused("rounds", lambda page_db: _rounds_context(page_db, settings, form)):
        default = plan_round(db=db, settings=settings, overrides={})
        overrides = round_form.overrides(form, default.config.model_dump())
        if fields.get("action") == "check":
            plan = plan_round(db=db, settings=settings, overrides=overrides)
            return console_page(request, "rounds", _rounds_context(db, settings, form, plan, default))
        round_ = service.launch(db=db, settings=settings, requested_by=admin, config_overrides=overrides)
    message = f"Round {round_.id} is queued; a worker picks it up shortly."
    return redirect_with_flash(request, f"/admin/rounds/{round_.id}", message)


@router.get("/rounds/{round_id}")
def round_detail(request: Request, round_id: IdPath, db: SessionDep, settings: SettingsDep) -> Response:
    return console_page(request, "round", _round_context(db, settings, round_id), section="rounds")


@router.get("/rounds/{round_id}/live")
def round_live(request: Request, round_id: IdPath, db: SessionDep, settings: SettingsDep) -> Response:
    """The parts of the round's page that change while it runs, for the page's live refresh."""
    return render(request, "admin/_round_live.html", _round_context(db, settings, round_id))


def cancel_message(round_: RoundRead) -> str:
    """What cancelling the round will do, for the admin to confirm."""
    if round_.status == RoundStatus.queued:
        return f"Cancel round {round_.id}? It has not started yet, so nothing is lost."
    at = round_view.stage_at(status=round_.status, stage=round_.stage, completed_stages=round_.completed_stages)
    where = f" during {at.replace('_', ' ')}" if at else ""
    return (
        f"Cancel round {round_.id}? Its trainer stops{where}; what it trained so far is deleted and nothing is "
        "published. A retry starts over from a new snapshot."
    )


@router.post("/rounds/{round_id}/cancel", dependencies=[CsrfChecked])
def cancel_round(
    request: Request,
    round_id: IdPath,
    db: SessionDep,
    settings: SettingsDep,
    confirmed: Annotated[bool, Form()] = False,
) -> Response:
    with rerender_if_refused(
        "round", lambda page_db: _round_context(page_db, settings, round_id), section="rounds", refusals=(InvalidState,)
    ):
        round_ = service.get_or_raise(db=db, round_id=round_id)
        if not confirmed and round_.status in (RoundStatus.queued, RoundStatus.running):  # else refused below
            return confirm_page(
                request,
                message=cancel_message(service.to_read(db=db, round_=round_)),
                action=f"/admin/rounds/{round_id}/cancel",
                confirm_label=f"Cancel round {round_id}",
                back=f"/admin/rounds/{round_id}",
                section="rounds",
            )
        round_ = service.request_cancel(db=db, round_id=round_id, now=utcnow())
    cancelled = round_.status == RoundStatus.cancelled
    message = "cancelled" if cancelled else "being cancelled; its worker stops it"
    return redirect_with_flash(request, f"/admin/rounds/{round_id}", f"Round {round_id} is {message}.")


@router.post("/rounds/{round_id}/retry", dependencies=[CsrfChecked])
def retry_round(request: Request, round_id: IdPath, db: SessionDep, settings: SettingsDep) -> Response:
    with rerender_if_refused(
        "round",
        lambda page_db: _round_context(page_db, settings, round_id),
        section="rounds",
        refusals=(InvalidState, Conflict),
    ):
        service.retry(db=db, round_id=round_id)
    return redirect_with_flash(request, f"/admin/rounds/{round_id}", f"Round {round_id} is queued again.")
