"""The admin console under /admin: dashboard, annotators and agreement, prompts, guidelines, users and
tokens, gold comparisons, policy versions and training rounds.

Every route needs an admin (an annotator gets a 403 page, an anonymous browser the login page).
Forms post with the CSRF token and redirect on success (a flash message says what happened); bad
input re-renders the page with the message and a 4xx, and nothing is stored.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from app.admin import round_form, service
from app.api.deps import MAX_DB_ID, CsrfChecked, IdPath, PageAdmin, SessionDep, SettingsDep, page_admin
from app.auth import service as auth_service
from app.auth import sessions
from app.auth.models import Role, Scope
from app.comparisons import service as comparisons_service
from app.comparisons.models import Choice
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import Conflict, DomainError, InvalidState, TooLarge, Unprocessable
from app.core.templates import render
from app.core.text import Text
from app.judgments import service as judgment_service
from app.policies import service as policies_service
from app.prompts import service as prompts_service
from app.ratings import service as ratings_service
from app.stats import service as stats_service
from app.training import service as training_service
from app.training.models import RoundStatus
from app.training.schemas import RoundConfig, default_config
from trainer import metrics as M

router = APIRouter(prefix="/admin", dependencies=[Depends(page_admin)])

RECENT_COMPARISONS = 20


def _page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    error: str | None = None,
    section: str | None = None,
) -> Response:
    """Render templates/admin/<name>.html with its sub-navigation section and any flash message."""
    flash = request.session.pop("flash", None)
    return render(
        request,
        f"admin/{name}.html",
        {"section": section or name, "flash": flash, "error": error, **context},
        status_code=status_code,
    )


def _done(request: Request, url: str, message: str) -> RedirectResponse:
    """Post/redirect/get: the next page shows `message` once."""
    request.session["flash"] = message
    return RedirectResponse(url, status_code=303)


def _failed(
    request: Request,
    db: Session,
    exc: DomainError,
    name: str,
    context: Callable[[], dict[str, Any]],
    *,
    section: str | None = None,
) -> Response:
    """Re-render a page after a refused form: nothing of it is kept, the message says why."""
    db.rollback()
    return _page(request, name, context(), status_code=exc.status_code, error=exc.msg, section=section)


def _back(target: str, default: str) -> str:
    # Forms say which console page to return to; only console paths are followed.
    return target if target.startswith("/admin") else default


# --- dashboard -------------------------------------------------------------------------------------


@router.get("")
def dashboard(request: Request, db: SessionDep, settings: SettingsDep) -> Response:
    progress = stats_service.progress(db=db)
    agreement = stats_service.agreement(db=db)
    busiest = sorted(stats_service.annotator_stats(db=db), key=lambda a: -a.judgments_today)
    return _page(
        request,
        "dashboard",
        {
            "progress": progress,
            "agreement": agreement,
            "busiest": [a for a in busiest if a.judgments_today][:5],
            "stages": training_service.STAGE_ORDER,
            "poll_ms": int(settings.ADMIN_POLL_S * 1000),
        },
    )


# --- annotators and agreement ----------------------------------------------------------------------


@router.get("/annotators")
def annotators(request: Request, db: SessionDep) -> Response:
    return _page(
        request,
        "annotators",
        {
            "annotators": stats_service.annotator_stats(db=db),
            "agreement": stats_service.agreement(db=db),
        },
    )


@router.post("/users/{user_id}/active", dependencies=[CsrfChecked])
def set_user_active(
    request: Request,
    user_id: IdPath,
    db: SessionDep,
    admin: PageAdmin,
    active: Annotated[bool, Form()],
    next: Annotated[Text, Form(max_length=200)] = "/admin/users",
) -> Response:
    try:
        user = service.set_user_active(db=db, actor=admin, user_id=user_id, active=active)
    except DomainError as exc:
        return _failed(request, db, exc, "users", lambda: _users_context(db))
    state = "active" if active else "deactivated: signed out, tokens revoked"
    return _done(request, _back(next, "/admin/users"), f"{user.username} is now {state}.")


@router.post("/users/{user_id}/training", dependencies=[CsrfChecked])
def set_user_training(
    request: Request,
    user_id: IdPath,
    db: SessionDep,
    excluded: Annotated[bool, Form()],
    next: Annotated[Text, Form(max_length=200)] = "/admin/users",
) -> Response:
    user = auth_service.get_or_raise(db=db, user_id=user_id)
    auth_service.set_excluded_from_training(db=db, user=user, excluded=excluded)
    verdict = "excluded from" if excluded else "included in"
    return _done(request, _back(next, "/admin/users"), f"{user.username}'s judgments are now {verdict} training.")


# --- users and API tokens --------------------------------------------------------------------------


def _role(value: str) -> Role:
    if value not in Role.__members__:
        raise Unprocessable(f"Role must be admin or annotator (got {value!r}).", loc=("role",))
    return Role(value)


def _users_context(db: Session, **extra: Any) -> dict[str, Any]:
    tokens = auth_service.list_tokens(db=db)
    users = auth_service.list_(db=db)
    names = {u.id: u.username for u in users}
    live = Counter(token.user_id for token in tokens if token.revoked_at is None)
    return {
        "users": users,
        "tokens": tokens,
        "names": names,
        "live_tokens": live,
        "roles": list(Role),
        "form": {},
        "now": utcnow(),
        **extra,
    }


@router.get("/users")
def users(request: Request, db: SessionDep) -> Response:
    return _page(request, "users", _users_context(db))


@router.post("/users", dependencies=[CsrfChecked])
def create_user(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    username: Annotated[Text, Form(max_length=64)] = "",
    password: Annotated[Text, Form(max_length=1024)] = "",
    role: Annotated[Text, Form(max_length=16)] = Role.annotator.value,
) -> Response:
    form = {"username": username, "role": role}
    try:
        user = auth_service.create(
            db=db,
            username=username,
            password=password,
            role=_role(role),
            min_password_length=settings.MIN_PASSWORD_LENGTH,
        )
    except DomainError as exc:
        return _failed(request, db, exc, "users", lambda: _users_context(db, form=form))
    return _done(request, "/admin/users", f"Created {user.role.value} {user.username}.")


@router.post("/users/{user_id}/role", dependencies=[CsrfChecked])
def set_user_role(
    request: Request,
    user_id: IdPath,
    db: SessionDep,
    role: Annotated[Text, Form(max_length=16)],
) -> Response:
    try:
        user = auth_service.get_or_raise(db=db, user_id=user_id)
        auth_service.set_role(db=db, user=user, role=_role(role))
    except DomainError as exc:
        return _failed(request, db, exc, "users", lambda: _users_context(db))
    return _done(request, "/admin/users", f"{user.username} is now an {user.role.value}.")


@router.post("/users/{user_id}/password", dependencies=[CsrfChecked])
def reset_user_password(
    request: Request,
    user_id: IdPath,
    db: SessionDep,
    settings: SettingsDep,
    admin: PageAdmin,
    password: Annotated[Text, Form(max_length=1024)] = "",
) -> Response:
    try:
        user = auth_service.get_or_raise(db=db, user_id=user_id)
        # An admin resetting their own password stays signed in here, as on their account page.
        own_session = request.session.get(sessions.COOKIE_KEY) if user.id == admin.id else None
        auth_service.set_password(
            db=db,
            user=user,
            password=password,
            min_password_length=settings.MIN_PASSWORD_LENGTH,
            keep_session=own_session,
        )
    except DomainError as exc:
        return _failed(request, db, exc, "users", lambda: _users_context(db))
    return _done(request, "/admin/users", f"{user.username} has a new password and is signed out everywhere.")


@router.post("/users/{user_id}/tokens", dependencies=[CsrfChecked])
def create_token(
    request: Request,
    user_id: IdPath,
    db: SessionDep,
    admin: PageAdmin,
    scopes: Annotated[list[Scope], Form(default_factory=list)],
    name: Annotated[Text, Form(max_length=100)] = "",
    expires_in_days: Annotated[int | None, Form(ge=1, le=auth_service.MAX_TOKEN_DAYS)] = None,
) -> Response:
    user = auth_service.get_or_raise(db=db, user_id=user_id)
    try:
        if not name.strip():
            raise Unprocessable("Give the token a name (e.g. what will use it).", loc=("name",))
        _api_token, token = auth_service.create_token(
            db=db,
            user=user,
            name=name.strip(),
            scopes=scopes,
            expires_in_days=expires_in_days,
            grantor=auth_service.session_grant(admin),
        )
    except DomainError as exc:
        return _failed(request, db, exc, "users", lambda: _users_context(db))
    # Shown in this response only (never through the session cookie, which is signed, not encrypted).
    return _page(request, "users", _users_context(db, new_token=token, new_token_owner=user.username), status_code=201)


@router.post("/tokens/{token_id}/revoke", dependencies=[CsrfChecked])
def revoke_token(request: Request, token_id: IdPath, db: SessionDep) -> Response:
    api_token = auth_service.revoke_token(db=db, token_id=token_id)
    return _done(request, "/admin/users", f"Token {api_token.name} (pfl_{api_token.prefix}_…) is revoked.")


# --- prompts ---------------------------------------------------------------------------------------

ACTIVE_FILTERS = {"all": None, "active": True, "inactive": False}


def _prompts_context(
    db: Session, settings: Settings, *, q: str = "", status: str = "all", page: int = 1, **extra: Any
) -> dict[str, Any]:
    size = settings.ADMIN_PAGE_SIZE
    items, total = prompts_service.list_(
        db=db, q=q.strip() or None, active=ACTIVE_FILTERS.get(status), offset=(page - 1) * size, limit=size
    )
    return {
        "prompts": items,
        "total": total,
        "q": q,
        "status": status,
        "page": page,
        "here": "/admin/prompts?" + urlencode({"q": q, "status": status, "page": page}),
        "pages": max(1, math.ceil(total / size)),
        "active_count": prompts_service.count_active(db=db),
        "max_mb": settings.UPLOAD_MAX_BYTES / 2**20,
        **extra,
    }


@router.get("/prompts")
def prompts(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    q: Annotated[Text, Query(max_length=500)] = "",
    status: Annotated[Literal["all", "active", "inactive"], Query()] = "all",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    return _page(request, "prompts", _prompts_context(db, settings, q=q, status=status, page=page))


@router.post("/prompts/import", dependencies=[CsrfChecked])
def import_prompts(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile | None, File()] = None,
    source: Annotated[Text, Form(max_length=100)] = "",
    skip_bad_lines: Annotated[bool, Form()] = False,
) -> Response:
    try:
        if file is None or not file.filename:
            raise Unprocessable("Choose a JSONL or CSV file to import.", loc=("file",))
        # The same limit as the prompts API (UPLOAD_MAX_BYTES).
        data = file.file.read(settings.UPLOAD_MAX_BYTES + 1)
        if len(data) > settings.UPLOAD_MAX_BYTES:
            limit_mb = settings.UPLOAD_MAX_BYTES / 2**20
            raise TooLarge(f"The file is larger than {limit_mb:g} MB; split it.", loc=("file",))
        content = prompts_service.decode_upload(data)
        report = prompts_service.import_text(
            db=db,
            content=content,
            fmt=prompts_service.detect_format(file.filename, content),
            source=prompts_service.upload_source(source, file.filename),
            skip_bad_lines=skip_bad_lines,
            max_chars=settings.PROMPT_MAX_CHARS,
        )
    except DomainError as exc:
        return _failed(request, db, exc, "prompts", lambda: _prompts_context(db, settings, source=source))
    skipped = "; ".join(f"line {e.line}: {e.message}" for e in report.errors[:5])
    message = f"Imported {report.created} prompts ({report.duplicates} duplicates"
    message += f", {len(report.errors)} bad lines skipped: {skipped})." if report.errors else ")."
    return _done(request, "/admin/prompts", message)


@router.post("/prompts/{prompt_id}/active", dependencies=[CsrfChecked])
def set_prompt_active(
    request: Request,
    prompt_id: IdPath,
    db: SessionDep,
    active: Annotated[bool, Form()],
    next: Annotated[Text, Form(max_length=2000)] = "/admin/prompts",
) -> Response:
    if active:
        prompts_service.reactivate(db=db, prompt_id=prompt_id)
    else:
        prompts_service.deactivate(db=db, prompt_id=prompt_id)
    state = "active again" if active else "deactivated; its ready pairs are retired"
    return _done(request, _back(next, "/admin/prompts"), f"Prompt {prompt_id} is {state}.")


# --- guidelines ------------------------------------------------------------------------------------


@router.get("/guidelines")
def guidelines(request: Request, db: SessionDep) -> Response:
    return _page(request, "guidelines", {"markdown": service.get_guidelines(db=db)})


@router.post("/guidelines", dependencies=[CsrfChecked])
def save_guidelines(request: Request, db: SessionDep, markdown: Annotated[Text, Form()] = "") -> Response:
    try:
        service.set_guidelines(db=db, markdown=markdown)
    except DomainError as exc:
        return _failed(request, db, exc, "guidelines", lambda: {"markdown": markdown})
    return _done(request, "/admin/guidelines", "Guidelines saved; annotators see them on their next pair.")


# --- gold comparisons ------------------------------------------------------------------------------


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
    return _page(request, "gold", _gold_context(db))


@router.post("/gold", dependencies=[CsrfChecked])
def mark_gold(
    request: Request,
    db: SessionDep,
    comparison_id: Annotated[Text, Form(max_length=20)] = "",
    choice: Annotated[Text, Form(max_length=16)] = "",
    next: Annotated[Text, Form(max_length=200)] = "/admin/gold",
) -> Response:
    form = {"comparison_id": comparison_id, "choice": choice}
    try:
        if not comparison_id.strip().isdigit() or not 1 <= int(comparison_id) <= MAX_DB_ID:
            raise Unprocessable("Comparison id must be a number.", loc=("comparison_id",))
        comparison = comparisons_service.set_gold(db=db, comparison_id=int(comparison_id), choice=choice)
    except DomainError as exc:
        return _failed(request, db, exc, "gold", lambda: _gold_context(db, form=form))
    return _done(
        request,
        _back(next, "/admin/gold"),
        f"Comparison {comparison.id} is gold; expected answer: {comparison.gold_choice.value}.",
    )


@router.post("/gold/{comparison_id}/clear", dependencies=[CsrfChecked])
def clear_gold(
    request: Request, comparison_id: IdPath, db: SessionDep, next: Annotated[Text, Form(max_length=200)] = "/admin/gold"
) -> Response:
    comparisons_service.clear_gold(db=db, comparison_id=comparison_id)
    return _done(request, _back(next, "/admin/gold"), f"Comparison {comparison_id} is no longer gold.")


@router.get("/comparisons/{comparison_id}")
def comparison(request: Request, comparison_id: IdPath, db: SessionDep) -> Response:
    found = comparisons_service.get_or_raise(db=db, comparison_id=comparison_id)
    return _page(
        request,
        "comparison",
        {
            "comparison": found,
            "judgments": judgment_service.list_for_comparison(db=db, comparison_id=comparison_id),
            "choices": list(Choice),
        },
        section="gold",
    )


# --- policy versions -------------------------------------------------------------------------------


def _policies_context(db: Session) -> dict[str, Any]:
    versions = policies_service.list_versions(db=db)
    by_id = {v.id: v for v in versions}
    lineage = {}
    for version in versions:
        chain, parent = [], version.parent_id
        while parent in by_id and len(chain) < len(by_id):  # a chain is never longer than the list
            chain.append(by_id[parent].number)
            parent = by_id[parent].parent_id
        lineage[version.id] = chain
    leaderboard = ratings_service.leaderboard(db=db)
    return {
        "versions": versions,
        "lineage": lineage,
        "rounds": policies_service.producing_rounds(db=db, version_ids=list(by_id)),
        "active": policies_service.get_active(db=db),
        "ratings": {row.version_id: row for row in leaderboard},
        "chart_points": [
            {"version": row.number, "rating": row.rating, "low": row.rating_low, "high": row.rating_high}
            for row in sorted(leaderboard, key=lambda row: row.number)
        ],
    }


@router.get("/policies")
def policies(request: Request, db: SessionDep) -> Response:
    return _page(request, "policies", _policies_context(db))


@router.post("/policies/{version_id}/activate", dependencies=[CsrfChecked])
def activate_policy(request: Request, version_id: IdPath, db: SessionDep) -> Response:
    try:
        version = policies_service.activate(db=db, version_id=version_id)
    except DomainError as exc:
        return _failed(request, db, exc, "policies", lambda: _policies_context(db))
    return _done(request, "/admin/policies", f"Policy v{version.number} is active; the sampler switches to it.")


# --- training rounds -------------------------------------------------------------------------------

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
        "series": [{"key": M.RM_TRAIN_LOSS, "label": "train loss"}],
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


def _rounds_context(db: Session, settings: Settings, submitted: dict[str, str] | None = None) -> dict[str, Any]:
    rounds, total = training_service.list_(db=db, limit=settings.ADMIN_PAGE_SIZE)
    defaults = default_config(settings)
    last_bound = max((r.snapshot_max_judgment_id or 0 for r in rounds), default=0)
    return {
        "rounds": [training_service.to_read(db=db, round_=r) for r in rounds],
        "total": total,
        "in_flight": training_service.in_flight(db=db),
        "new_judgments": training_service.count_usable_judgments(
            db=db, after_id=last_bound, include_ties=defaults["data"]["include_ties"]
        ),
        "sections": round_form.sections(defaults, RoundConfig.model_json_schema(), submitted),
        "names": {u.id: u.username for u in auth_service.list_(db=db)},
        "stages_count": len(training_service.STAGE_ORDER),
    }


@router.get("/rounds")
def rounds(request: Request, db: SessionDep, settings: SettingsDep) -> Response:
    return _page(request, "rounds", _rounds_context(db, settings))


@router.post("/rounds", dependencies=[CsrfChecked])
async def launch_round(request: Request, db: SessionDep, settings: SettingsDep, admin: PageAdmin) -> Response:
    # The form's fields follow the configuration (app.training.schemas), so they are read as a whole.
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str) and k != "csrf_token"}
    try:
        overrides = round_form.overrides(form, default_config(settings))
        round_ = training_service.launch(db=db, settings=settings, requested_by=admin, config_overrides=overrides)
    except DomainError as exc:
        return _failed(request, db, exc, "rounds", lambda: _rounds_context(db, settings, form))
    return _done(request, f"/admin/rounds/{round_.id}", f"Round {round_.id} is queued; a worker picks it up shortly.")


@router.get("/rounds/{round_id}")
def round_detail(request: Request, round_id: IdPath, db: SessionDep, settings: SettingsDep) -> Response:
    return _page(request, "round", _round_context(db, settings, round_id), section="rounds")


def _round_context(db: Session, settings: Settings, round_id: int) -> dict[str, Any]:
    round_ = training_service.to_read(db=db, round_=training_service.get_or_raise(db=db, round_id=round_id))
    requester = auth_service.get(db=db, user_id=round_.requested_by_id) if round_.requested_by_id else None
    return {
        "round": round_,
        "vs_parent": ratings_service.against_parent(db=db, version_id=round_.policy_version_id)
        if round_.policy_version_id
        else None,
        "requester": requester.username if requester else None,
        "stages": training_service.STAGE_ORDER,
        "charts": ROUND_CHARTS,
        "poll_ms": int(settings.ADMIN_POLL_S * 1000),
    }


@router.post("/rounds/{round_id}/cancel", dependencies=[CsrfChecked])
def cancel_round(request: Request, round_id: IdPath, db: SessionDep, settings: SettingsDep) -> Response:
    try:
        round_ = training_service.request_cancel(db=db, round_id=round_id, now=utcnow())
    except InvalidState as exc:
        return _failed(request, db, exc, "round", lambda: _round_context(db, settings, round_id), section="rounds")
    cancelled = round_.status == RoundStatus.cancelled
    message = "cancelled" if cancelled else "being cancelled; its worker stops it"
    return _done(request, f"/admin/rounds/{round_id}", f"Round {round_id} is {message}.")


@router.post("/rounds/{round_id}/retry", dependencies=[CsrfChecked])
def retry_round(request: Request, round_id: IdPath, db: SessionDep, settings: SettingsDep) -> Response:
    try:
        training_service.retry(db=db, round_id=round_id)
    except (InvalidState, Conflict) as exc:
        return _failed(request, db, exc, "round", lambda: _round_context(db, settings, round_id), section="rounds")
    return _done(request, f"/admin/rounds/{round_id}", f"Round {round_id} is queued again.")
