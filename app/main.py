"""The app factory: settings, database, middleware, error handlers, routers and background components."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from app import background
from app.api.deps import LoginRequired
from app.api.docs import install_api_docs
from app.auth import sessions
from app.core.config import PROJECT_ROOT, Settings, get_settings
from app.core.cookies import SecureCookiesOverHttps
from app.core.db import Database
from app.core.errors import install_error_handlers
from app.core.headers import SecurityHeadersMiddleware
from app.core.limits import BodyLimitMiddleware
from app.core.pages import FormRefused, rerender_refused_form
from app.core.templates import make_templates
from app.router import api_router, document_errors, page_router, public_router

log = logging.getLogger("prefloop.http")
SESSION_COOKIE = "prefloop_session"


def create_app(settings: Settings | None = None, *, run_background: bool | None = None) -> FastAPI:
    settings = settings or get_settings()
    db = Database(settings.database_url)
    components = (
        background.build_components(settings, db)
        if (settings.RUN_BACKGROUND if run_background is None else run_background)
        else []
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for component in components:
            component.start()
            log.info("started %s", component.name)
        if settings.GC_FREEZE_ON_START:
            gc.collect()
            gc.freeze()
        yield
        for component in reversed(components):
            component.stop()
        db.dispose()

    app = FastAPI(
        title="prefloop",
        version="0.1.0",
        summary="Collect human preferences on policy samples and train the next policy from them.",
        lifespan=lifespan,
        # The API reference is served by install_api_docs below (local files, CSP-safe, access setting).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.templates = make_templates()
    app.state.components = components

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=settings.SESSION_MAX_AGE_S,
        same_site="lax",
        https_only=settings.SECURE_COOKIES,
    )
    app.add_middleware(SecureCookiesOverHttps)  # outside the session middleware: sees its cookie

    @app.middleware("http")
    async def log_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        log.info(
            "%s %s %d %.1fms",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    # Outside everything that reads a body: nothing below reads more of one than the route's limit.
    app.add_middleware(BodyLimitMiddleware, session_cookie=SESSION_COOKIE, signed_in_key=sessions.COOKIE_KEY)
    # Outermost, so the limit's own 401/413 answers carry the headers too.
    app.add_middleware(SecurityHeadersMiddleware)
    install_error_handlers(app)
    # The decorator's form: add_exception_handler's type takes only handlers of any Exception.
    app.exception_handler(FormRefused)(rerender_refused_form)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _exc: LoginRequired) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)

    install_api_docs(app, settings)
    app.mount("/static", StaticFiles(directory=PROJECT_ROOT / "static"), name="static")
    app.include_router(public_router)
    app.include_router(api_router)
    app.include_router(page_router)
    document_errors(app)
    return app
