"""JSON API for accounts and tokens.

/me and your own tokens work with a token of any scope; managing accounts, and everyone's tokens, needs
the admin scope (each route declares its scope here; the other routers declare theirs in app/router.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from sqlalchemy.orm import Session

from app.api.deps import ApiAdmin, ApiGrant, ApiUser, IdPath, SessionDep, SettingsDep, client_address, scope_required
from app.auth import service, sessions
from app.auth.models import Scope, User
from app.auth.schemas import PasswordChange, TokenCreate, TokenCreated, TokenRead, UserCreate, UserRead, UserUpdate
from app.core.errors import TooManyRequests, Unprocessable

router = APIRouter()

ANY_SCOPE = [scope_required(None)]
ADMIN = [scope_required(Scope.admin)]


@router.get("/me", response_model=UserRead, dependencies=ANY_SCOPE)
def read_me(user: ApiUser) -> UserRead:
    """The account the request is authenticated as."""
    return UserRead.model_validate(user)


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT, dependencies=ANY_SCOPE)
def change_password(
    request: Request, body: PasswordChange, db: SessionDep, settings: SettingsDep, user: ApiUser
) -> Response:
    """Change your password. Your other browser sessions end; this one (if any) and API tokens stay."""
    result = service.change_password(
        db=db,
        settings=settings,
        user=user,
        client=client_address(request),
        current_password=body.current_password,
        new_password=body.new_password,
        keep_session=request.session.get(sessions.COOKIE_KEY),
    )
    if result.user is None:
        db.commit()  # the error below rolls the request back; the failed check must still count
        if result.throttled:
            raise TooManyRequests(
                f"Too many failed attempts. Try again in {result.retry_after_s} seconds.",
                retry_after_s=result.retry_after_s,
                loc=("body", "current_password"),
            )
        raise Unprocessable("Your current password is wrong.", loc=("body", "current_password"))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users", response_model=list[UserRead], dependencies=ADMIN)
def list_users(db: SessionDep, _admin: ApiAdmin) -> list[UserRead]:
    """Every account."""
    return [UserRead.model_validate(u) for u in service.list_(db=db)]


@router.post("/users", response_model=UserRead, status_code=status.HTTP_201_CREATED, dependencies=ADMIN)
def create_user(body: UserCreate, db: SessionDep, settings: SettingsDep, _admin: ApiAdmin) -> UserRead:
    """Create an account."""
    user = service.create(
        db=db,
        username=body.username,
        password=body.password,
        role=body.role,
        min_password_length=settings.MIN_PASSWORD_LENGTH,
    )
    return UserRead.model_validate(user)


@router.patch("/users/{user_id}", response_model=UserRead, dependencies=ADMIN)
def update_user(user_id: IdPath, body: UserUpdate, db: SessionDep, admin: ApiAdmin) -> UserRead:
    """Deactivate or reactivate an account, change its role, or exclude its judgments from training.
    Nobody deactivates their own account, and the last active admin cannot be demoted (409)."""
    user = service.get_or_raise(db=db, user_id=user_id)
    if body.is_active is not None:
        service.set_active(db=db, actor=admin, user=user, active=body.is_active)
    if body.role is not None:
        service.set_role(db=db, user=user, role=body.role)
    if body.excluded_from_training is not None:
        service.set_excluded_from_training(db=db, user=user, excluded=body.excluded_from_training)
    return UserRead.model_validate(user)


def _sees_everyones_tokens(user: User, grant: service.Grant) -> bool:
    return user.is_admin and Scope.admin in grant.scopes


@router.get("/tokens", response_model=list[TokenRead], dependencies=ANY_SCOPE)
def list_tokens(db: SessionDep, user: ApiUser, grant: ApiGrant) -> list[TokenRead]:
    """Your API tokens (with the admin scope: everyone's), by prefix; the secret part is never shown again."""
    owner = None if _sees_everyones_tokens(user, grant) else user
    return [TokenRead.model_validate(t) for t in service.list_tokens(db=db, user=owner)]


def _created(body: TokenCreate, db: Session, owner: User, grant: service.Grant) -> TokenCreated:
    api_token, token = service.create_token(
        db=db,
        user=owner,
        name=body.name,
        scopes=body.scopes,
        expires_at=body.expires_at,
        expires_in_days=body.expires_in_days,
        grantor=grant,
    )
    return TokenCreated.model_validate({**TokenRead.model_validate(api_token).model_dump(), "token": token})


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED, dependencies=ANY_SCOPE)
def create_token(body: TokenCreate, db: SessionDep, user: ApiUser, grant: ApiGrant) -> TokenCreated:
    """Create an API token for yourself, with at most your own credential's scopes and expiry. The
    response holds the full token, once."""
    return _created(body, db, user, grant)


@router.post(
    "/users/{user_id}/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED, dependencies=ADMIN
)
def create_token_for_user(
    user_id: IdPath, body: TokenCreate, db: SessionDep, _admin: ApiAdmin, grant: ApiGrant
) -> TokenCreated:
    """Create an API token for another account (e.g. a labeling vendor's or a scripted judge's), with
    scopes its role allows."""
    return _created(body, db, service.get_or_raise(db=db, user_id=user_id), grant)


@router.delete("/tokens/{token_id}", response_model=TokenRead, dependencies=ANY_SCOPE)
def revoke_token(token_id: IdPath, db: SessionDep, user: ApiUser, grant: ApiGrant) -> TokenRead:
    """Revoke a token: it stops working at once. With the admin scope, anyone's."""
    owner = None if _sees_everyones_tokens(user, grant) else user
    return TokenRead.model_validate(service.revoke_token(db=db, token_id=token_id, owner=owner))
