"""The landing page at /: tiles for where a signed-in user can go (annotate, the console for admins,
their account, the API reference); an anonymous browser is sent to the login page. And /favicon.ico,
which browsers and tools ask for whatever the page's icon link says."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.api.deps import PageUser
from app.core.templates import render

router = APIRouter()


@router.get("/")
def home(request: Request, user: PageUser) -> Response:
    return render(request, "home.html", {"user": user})


@router.get("/favicon.ico")
def favicon(request: Request) -> Response:
    return RedirectResponse(request.url_for("static", path="img/favicon.svg"), status_code=301)
