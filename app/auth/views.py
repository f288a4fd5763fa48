"""JSON API for accounts and tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.api.deps import ApiAdmin, ApiUser, IdPath, SessionDep, SettingsDep, client_address
from app.auth import service, sessions
from app.auth.schemas import PasswordChange, TokenCreate, TokenCreated, TokenRead, UserCreate, UserRead, UserUpdate
from app.core.errors import TooManyRequests, Unprocessable

router = APIRouter()


@router.get("/me", response_model=UserRead)
def read_me(user: ApiUser) -> UserRead:
    """The account the request is authenticated as."""
    return UserRead.model_validate(user)


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(
    request: Request, body: PasswordChange, db: SessionDep, settings: SettingsDep, user: ApiUser
) -> Response:
    """Change your password. Your other browser sessions end; this one (if any) and API tokens stay."""
    result = service.change_password(
        db=db, settings=settings, user=user, client=client_address(request),
        current_password=body.current_password, new_password=body.new_password,
        keep_session=request.session.get(sessions.COOKIE_KEY),
    )
    if result.user is None:
        db.commit()  # the error below rolls the request back; the failed check must still count
        if result.throttled:
            raise TooManyRequests(f"Too many failed attempts. Try again in {result.retry_after_s} seconds.",
                                  retry_after_s=result.retry_after_s, loc=("body", "current_password"))
        raise Unprocessable("Your current password is wrong.", loc=("body", "current_password"))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users", response_model=list[UserRead])
def list_users(db: SessionDep, _admin: ApiAdmin) -> list[UserRead]:
    """Every account."""
    return [UserRead.model_validate(u) for u in service.list_(db=db)]


@router.post("/users", response_model=UserRead, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, db: SessionDep, settings: SettingsDep, _admin: ApiAdmin) -> UserRead:
    """Create an account."""
    user = service.create(
        db=db, username=body.username, password=body.password, role=body.role,
        min_password_length=settings.MIN_PASSWORD_LENGTH,
    )
    return UserRead.model_validate(user)


@router.patch("/users/{user_id}", response_model=UserRead)
def update_user(user_id: IdPath, body: UserUpdate, db: SessionDep, _admin: ApiAdmin) -> UserRead:
    """Deactivate or reactivate an account, change its role, or exclude its judgments from training.
    The last active admin can be neither deactivated nor demoted (409)."""
    user = service.get_or_raise(db=db, user_id=user_id)
    if body.is_active is not None:
        service.set_active(db=db, user=user, active=body.is_active)
    if body.role is not None:
        service.set_role(db=db, user=user, role=body.role)
    if body.excluded_from_training is not None:
        service.set_excluded_from_training(db=db, user=user, excluded=body.excluded_from_training)
    return UserRead.model_validate(user)


@router.get("/tokens", response_model=list[TokenRead])
def list_tokens(db: SessionDep, user: ApiUser) -> list[TokenRead]:
    """Your API tokens (admins: everyone's), by prefix; the secret part is never shown again."""
    owner = None if user.is_admin else user
    return [TokenRead.model_validate(t) for t in service.list_tokens(db=db, user=owner)]


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, db: SessionDep, user: ApiUser) -> TokenCreated:
    """Create an API token for yourself. The response holds the full token, once."""
    api_token, token = service.create_token(db=db, user=user, name=body.name)
    return TokenCreated.model_validate({**TokenRead.model_validate(api_token).model_dump(), "token": token})


@router.post("/users/{user_id}/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def create_token_for_user(
    user_id: IdPath, body: TokenCreate, db: SessionDep, _admin: ApiAdmin
) -> TokenCreated:
    """Create an API token for another account (e.g. a labeling vendor's or a scripted judge's)."""
    user = service.get_or_raise(db=db, user_id=user_id)
    api_token, token = service.create_token(db=db, user=user, name=body.name)
    return TokenCreated.model_validate({**TokenRead.model_validate(api_token).model_dump(), "token": token})


@router.delete("/tokens/{token_id}", response_model=TokenRead)
def revoke_token(token_id: IdPath, db: SessionDep, user: ApiUser) -> TokenRead:
    """Revoke a token: it stops working at once. Admins may revoke anyone's."""
    owner = None if user.is_admin else user
    return TokenRead.model_validate(service.revoke_token(db=db, token_id=token_id, owner=owner))
