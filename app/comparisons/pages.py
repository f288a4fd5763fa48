"""The console's gold comparisons (/admin/gold) and one comparison with its judgments
(/admin/comparisons/{id}): mark a comparison gold with its expected answer, or clear it."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.api.deps import MAX_DB_ID, CsrfChecked, IdPath, SessionDep
from app.comparisons import service as comparisons_service
from app.comparisons.models import Choice
from app.core.errors import Unprocessable
from app.core.pages import console_page, local_target, redirect_with_flash, rerender_if_refused
from app.core.text import Text
from app.judgments import service as judgment_service
from app.stats import service as stats_service

router = APIRouter()

RECENT_COMPARISONS = 20


def _gold_context(db: Session, **extra: Any) -> dict[str, Any]:
    return {
        "gold": comparisons_service.list_gold(db=db),
        "results": stats_service.gold_results(db=db),
        "recent": comparisons_service.list_recent(db=db, limit=RECENT_COMPARISONS),
        "choices": list(Choice),
        "form": {},
        **extra,
    }


@router.get("/gold")
def gold(request: Request, db: SessionDep) -> Response:
    return console_page(request, "gold", _gold_context(db))


@router.post("/gold", dependencies=[CsrfChecked])
def mark_gold(
    request: Request,
    db: SessionDep,
    comparison_id: Annotated[Text, Form(max_length=20)] = "",
    choice: Annotated[Text, Form(max_length=16)] = "",
    next: Annotated[Text, Form(max_length=200)] = "/admin/gold",
) -> Response:
    form = {"comparison_id": comparison_id, "choice": choice}
    with rerender_if_refused("gold", lambda page_db: _gold_context(page_db, form=form)):
        if not comparison_id.strip().isdigit() or not 1 <= int(comparison_id) <= MAX_DB_ID:
            raise Unprocessable("Comparison id must be a number.", loc=("comparison_id",))
        comparison = comparisons_service.set_gold(db=db, comparison_id=int(comparison_id), choice=choice)
    return redirect_with_flash(
        request,
        local_target(next, "/admin/gold", within="/admin"),
        f"Comparison {comparison.id} is gold; expected answer: {choice}.",  # set_gold accepted it as a Choice
    )


@router.post("/gold/{comparison_id}/clear", dependencies=[CsrfChecked])
def clear_gold(
    request: Request, comparison_id: IdPath, db: SessionDep, next: Annotated[Text, Form(max_length=200)] = "/admin/gold"
) -> Response:
    comparisons_service.clear_gold(db=db, comparison_id=comparison_id)
    back = local_target(next, "/admin/gold", within="/admin")
    return redirect_with_flash(request, back, f"Comparison {comparison_id} is no longer gold.")


def _comparison_context(db: Session, comparison_id: int) -> dict[str, Any]:
    return {
        "comparison": comparisons_service.get_or_raise(db=db, comparison_id=comparison_id),
        "judgments": judgment_service.list_for_comparison(db=db, comparison_id=comparison_id),
        "choices": list(Choice),
    }


@router.get("/comparisons/{comparison_id}")
def comparison(request: Request, comparison_id: IdPath, db: SessionDep) -> Response:
    return console_page(request, "comparison", _comparison_context(db, comparison_id), section="gold")


@router.post("/comparisons/{comparison_id}/gold", dependencies=[CsrfChecked])
def mark_this_gold(
    request: Request, comparison_id: IdPath, db: SessionDep, choice: Annotated[Text, Form(max_length=16)] = ""
) -> Response:
    """Gold from the comparison's own page, read before it is marked; a refusal shows that page again."""
    comparisons_service.get_or_raise(db=db, comparison_id=comparison_id)  # a missing one is a 404 page
    context = partial(_comparison_context, comparison_id=comparison_id)
    with rerender_if_refused("comparison", context, section="gold"):
        if not choice:
            raise Unprocessable("Choose the expected answer.", loc=("choice",))
        comparisons_service.set_gold(db=db, comparison_id=comparison_id, choice=choice)
    message = f"Comparison {comparison_id} is gold; expected answer: {choice}."
    return redirect_with_flash(request, f"/admin/comparisons/{comparison_id}", message)
