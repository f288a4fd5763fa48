"""Request bodies are bounded before anything reads them, and anonymous API writes end before their body.

A pure ASGI middleware, outermost, so no other layer (sessions, form parsing, FastAPI's JSON parsing,
authentication) ever holds more than the limit:

* a declared Content-Length over the route's limit is answered 413 at once, the body unread;
* a chunked body is counted as it arrives (Starlette's RequestBodyLimitMiddleware): the chunk that
  passes the limit ends the read with a 413 (the app's error shape, via its HTTPException handler) and
  the rest is never read (the server stops reading the connection instead of buffering it);
* a state-changing /api/ request with neither an Authorization header nor a signed session cookie that
  names a signed-in session is a 401 before its body is read: FastAPI parses a JSON body before
  dependencies run, so without this an anonymous client sending bad JSON would get a 422 and any
  anonymous client could make the server parse a body it will refuse anyway.

Limits (settings, read per request): BODY_MAX_BYTES for every route, UPLOAD_MAX_BYTES for the prompt
imports of the API (UPLOAD_ROUTES), whose files are larger by nature. The console's upload form may carry
a file of UPLOAD_MAX_BYTES plus its form fields (BODY_MAX_BYTES more), so a file just over the limit gets
the console's own message on its page rather than this bare refusal.
"""

from __future__ import annotations

import json
from base64 import b64decode

from itsdangerous import BadSignature, TimestampSigner
from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings
from app.core.errors import render_error

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# (method, path) of the prompt imports: the JSON API and its file upload; then the console's upload form.
UPLOAD_ROUTES = {("POST", "/api/v1/prompts"), ("POST", "/api/v1/prompts/import")}
UPLOAD_FORM_ROUTES = {("POST", "/admin/prompts/import")}


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, session_cookie: str, signed_in_key: str) -> None:
        self.app = app
        self.session_cookie = session_cookie
        self.signed_in_key = signed_in_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = scope["path"]
        settings: Settings = scope["app"].state.settings
        if path.startswith("/api/") and not headers.get("authorization") and not self._signed_in(headers, settings):
            await _send_error(
                scope,
                send,
                401,
                "Authentication required: send 'Authorization: Bearer <token>'.",
                "not_authenticated",
                {"WWW-Authenticate": "Bearer"},
            )
            return
        limit, setting = limit_for(settings, scope["method"], path)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _send_error(
                scope,
                send,
                413,
                f"The request body is larger than the limit of {limit} bytes ({setting}); send less at once.",
                "too_large",
                {"Connection": "close"},
            )
            return
        await RequestBodyLimitMiddleware(self.app, limit)(scope, receive, send)

    def _signed_in(self, headers: Headers, settings: Settings) -> bool:
        """Whether the session cookie is one this app signed and it names a signed-in session, read as
        Starlette's SessionMiddleware reads it. Whether that session still exists is the database's
        answer, given after the body is read; an anonymous browser's cookie (a CSRF token alone) or
        a made-up one ends here."""
        cookie = next(
            (
                part.strip()[len(self.session_cookie) + 1 :]
                for part in headers.get("cookie", "").split(";")
                if part.strip().startswith(f"{self.session_cookie}=")
            ),
            None,
        )
        if not cookie:
            return False
        try:
            data = TimestampSigner(settings.secret_key).unsign(cookie.encode(), max_age=settings.SESSION_MAX_AGE_S)
            session = json.loads(b64decode(data))
        except (BadSignature, ValueError):
            return False
        return isinstance(session, dict) and self.signed_in_key in session


def limit_for(settings: Settings, method: str, path: str) -> tuple[int, str]:
    """The most bytes a request's body may have, and the setting that says so."""
    route = (method, path.rstrip("/") or "/")
    if route in UPLOAD_ROUTES:
        return settings.UPLOAD_MAX_BYTES, "PREFLOOP_UPLOAD_MAX_BYTES"
    if route in UPLOAD_FORM_ROUTES:
        return settings.UPLOAD_MAX_BYTES + settings.BODY_MAX_BYTES, "PREFLOOP_UPLOAD_MAX_BYTES"
    return settings.BODY_MAX_BYTES, "PREFLOOP_BODY_MAX_BYTES"


async def _send_error(scope: Scope, send: Send, status: int, msg: str, kind: str, headers: dict[str, str]) -> None:
    """The app's own error response (JSON, or the error page), sent before the session layer ran."""
    request = Request({**scope, "session": {}})
    loc = ["body"] if status == 413 else ["header", "authorization"]
    response = render_error(request, status, msg, kind, loc, headers)

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    await response(request.scope, no_body, send)
