"""Errors a user can cause, raised by services and mapped once to HTTP: JSON for the API, a page otherwise.

Every JSON error has FastAPI's validation shape, {"detail": [{"loc": [...], "msg": ..., "type": ...}]},
so a client reads one format whether a field failed validation or a rule was broken.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.headers import SECURITY_HEADERS

log = logging.getLogger("prefloop.errors")


class ErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """The body of every JSON error (the OpenAPI description names it for each error status)."""

    detail: list[ErrorDetail]


class DomainError(Exception):
    status_code = 400
    kind = "bad_request"

    def __init__(self, msg: str, *, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(msg)
        self.msg = msg
        self.loc = list(loc)


class NotAuthenticated(DomainError):
    status_code, kind = 401, "not_authenticated"


class PermissionDenied(DomainError):
    status_code, kind = 403, "permission_denied"


class NotFound(DomainError):
    status_code, kind = 404, "not_found"


class Conflict(DomainError):
    status_code, kind = 409, "conflict"


class InvalidState(DomainError):
    """The request is well-formed but the thing it acts on is not in a state that allows it."""

    status_code, kind = 409, "invalid_state"


class TooLarge(DomainError):
    status_code, kind = 413, "too_large"


class Unprocessable(DomainError):
    status_code, kind = 422, "invalid"


class TooManyRequests(DomainError):
    status_code, kind = 429, "too_many_requests"

    def __init__(self, msg: str, *, retry_after_s: int, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(msg, loc=loc)
        self.retry_after_s = retry_after_s


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", "")


def error_body(msg: str, kind: str, loc: Sequence[str | int] | None = None) -> dict[str, Any]:
    return {"detail": [{"loc": loc or [], "msg": msg, "type": kind}]}


def render_error(
    request: Request,
    status: int,
    msg: str,
    kind: str,
    loc: Sequence[str | int] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    if wants_json(request):
        return JSONResponse(error_body(msg, kind, loc), status_code=status, headers=headers)
    from app.core.templates import render

    return render(request, "error.html", {"status": status, "message": msg}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, TooManyRequests) else None
        if isinstance(exc, NotAuthenticated) and wants_json(request):
            headers = {"WWW-Authenticate": "Bearer"}
        return render_error(request, exc.status_code, exc.msg, exc.kind, exc.loc, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        msg = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return render_error(request, exc.status_code, msg, "http_error", None, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid"), "type": e.get("type", "invalid")}
            for e in exc.errors()
        ]
        if wants_json(request):
            return JSONResponse({"detail": errors}, status_code=422)
        msg = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}" for e in errors)
        return render_error(request, 422, msg, "invalid")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # Rendered outside every middleware (see app.core.headers), so the headers come along here.
        return render_error(
            request, 500, "Internal error; it has been logged.", "internal_error", headers=SECURITY_HEADERS
        )
