"""The console's own pages under /admin: the dashboard, annotators and their agreement, and the annotation
guidelines. Every other domain serves its console pages from its own pages.py (see app/router.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.admin import service
from app.api.deps import CsrfChecked, SessionDep, SettingsDep
from app.core.pages import console_page, redirect_with_flash, rerender_if_refused
from app.core.text import Text
from app.stats import service as stats_service
from app.training.plan import plan_round
from trainer.contract import STAGE_ORDER

router = APIRouter()


@router.get("")
def dashboard(request: Request, db: SessionDep, settings: SettingsDep) -> Response:
    progress = stats_service.progress(db=db)
    agreement = stats_service.agreement(db=db)
    busiest = sorted(stats_service.annotator_stats(db=db), key=lambda a: -a.judgments_today)
    return console_page(
        request,
        "dashboard",
        {
            "progress": progress,
            "agreement": agreement,
            "busiest": [a for a in busiest if a.judgments_today][:5],
            "stages": STAGE_ORDER,
            "poll_ms": int(settings.ADMIN_POLL_S * 1000),
            "next_round": plan_round(db=db, settings=settings, overrides={}),
        },
    )


@router.get("/annotators")
def annotators(request: Request, db: SessionDep) -> Response:
    return console_page(
        request,
        "annotators",
        {
            "annotators": stats_service.annotator_stats(db=db),
            "agreement": stats_service.agreement(db=db),
        },
    )


@router.get("/guidelines")
def guidelines(request: Request, db: SessionDep) -> Response:
    return console_page(request, "guidelines", {"markdown": service.get_guidelines(db=db)})


@router.post("/guidelines", dependencies=[CsrfChecked])
def save_guidelines(request: Request, db: SessionDep, markdown: Annotated[Text, Form()] = "") -> Response:
    with rerender_if_refused("guidelines", lambda _db: {"markdown": markdown}):
        service.set_guidelines(db=db, markdown=markdown)
    message = "Guidelines saved; annotators see them on their next pair."
    return redirect_with_flash(request, "/admin/guidelines", message)
