"""The landing page at /: tiles for where a signed-in user can go (annotate, the console for admins,
their account, the API reference); an anonymous browser is sent to the login page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.deps import PageUser
from app.core.templates import render

router = APIRouter()


@router.get("/")
def home(request: Request, user: PageUser) -> Response:
    return render(request, "home.html", {"user": user})
