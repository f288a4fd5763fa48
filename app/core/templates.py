"""Jinja2 rendering for pages: every template gets the CSRF token and the signed-in user."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt

from app.core.config import PROJECT_ROOT
from app.core.security import csrf_token_for

# Model output and admin-written guidelines are both rendered through this: raw HTML is escaped
# ("html": False), so only Markdown's own constructs (code blocks, lists, emphasis) come through.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).disable("image")


def safe_markdown(text: str) -> str:
    html: str = _markdown.render(text or "")  # markdown-it types render() loosely (a renderer may be swapped)
    return html


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(PROJECT_ROOT / "templates"))
    templates.env.filters["markdown"] = safe_markdown
    return templates


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    context = {
        "csrf_token": csrf_token_for(request.session),
        "current_user": getattr(request.state, "user", None),
        **(context or {}),
    }
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, status_code=status_code, headers=headers)
