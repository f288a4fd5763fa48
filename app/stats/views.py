"""JSON API for annotation progress, per-annotator quality and agreement. Admins only; the console
pages show the same numbers from the same service."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ApiAdmin, SessionDep
from app.stats import service
from app.stats.schemas import Agreement, AnnotatorStats, Progress

router = APIRouter(prefix="/stats")


@router.get("/progress", response_model=Progress)
def read_progress(db: SessionDep, _admin: ApiAdmin) -> Progress:
    """Prompts, the comparison pool, judgments today / per hour, active annotators, the active policy
    and the round in flight."""
    return service.progress(db=db)


@router.get("/annotators", response_model=list[AnnotatorStats])
def read_annotator_stats(db: SessionDep, _admin: ApiAdmin) -> list[AnnotatorStats]:
    """Per annotator: counts, median time, tie / both-bad / skip rates, left-position bias, gold
    accuracy and agreement with the others on shared comparisons."""
    return service.annotator_stats(db=db)


@router.get("/agreement", response_model=Agreement)
def read_agreement(db: SessionDep, _admin: ApiAdmin) -> Agreement:
    """Krippendorff's alpha over comparisons judged by two or more annotators, and Cohen's kappa per
    annotator pair."""
    return service.agreement(db=db)
