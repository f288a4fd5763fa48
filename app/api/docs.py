"""The API reference: /openapi.json and Swagger UI at /docs, both served by the app itself.

FastAPI's built-in pages load Swagger UI from a CDN and start it with an inline script, which the
Content-Security-Policy (app.core.headers) forbids; this page loads the files of the
swagger-ui-bundle package and a script from static/. PREFLOOP_API_DOCS decides who may read both:
"public", "login" (a signed-in browser or a token holder; an anonymous browser is sent to the login
page, an anonymous client gets 401) or "off" (neither route exists).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from app.api.deps import LoginRequired, SessionDep, api_user, scope_required
from app.core.config import Settings
from app.core.errors import NotAuthenticated, wants_json
from app.core.templates import render

OPENAPI_URL = "/openapi.json"
SWAGGER_CONFIG = {
    "url": OPENAPI_URL,
    "deepLinking": True,
    "showExtensions": True,
    "showCommonExtensions": True,
    # Swagger UI would otherwise send the schema to validator.swagger.io for a badge.
    "validatorUrl": None,
}


def signed_in_reader(request: Request, db: SessionDep) -> None:
    try:
        api_user(request, db)
    except NotAuthenticated:
        if wants_json(request):
            raise
        raise LoginRequired() from None


def install_api_docs(app: FastAPI, settings: Settings) -> None:
    """Add /openapi.json, /docs and Swagger UI's files, unless PREFLOOP_API_DOCS is "off".

    Call with FastAPI(openapi_url=None, docs_url=None, redoc_url=None), so these are the only ones.
    """
    if settings.API_DOCS == "off":
        return
    # Mounted before /static, which would otherwise claim the whole prefix.
    app.mount("/static/swagger-ui", StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
    router = APIRouter(
        include_in_schema=False,
        # Any token scope reads the reference: it describes the API, not its data.
        dependencies=[scope_required(None), Depends(signed_in_reader)] if settings.API_DOCS == "login" else [],
    )

    @router.get(OPENAPI_URL)
    def read_openapi(request: Request) -> Response:
        return JSONResponse(request.app.openapi())

    @router.get("/docs")
    def read_docs(request: Request) -> Response:
        return render(request, "api/docs.html", {"title": request.app.title, "config": SWAGGER_CONFIG})

    app.include_router(router)
