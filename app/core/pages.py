"""What page routes share: a console page with its sub-navigation and flash message, post/redirect/get,
return targets that stay on this site, and forms refused by a domain rule.

A console form posts with the CSRF token and redirects on success; the next page shows a flash message
saying what happened. A form with consequences (activating a version, cancelling a round, deactivating)
asks first: see `confirm_page`. A form that a domain rule refuses raises FormRefused (see `rerender_if_refused`):
the request's unit of work rolls back as it does for any error (app.api.deps.get_db), then one exception
handler, `rerender_refused_form`, shows the page again with the rule's message and its 4xx. No route rolls
back a transaction itself, and nothing of a refused form is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from app.core.errors import DomainError
from app.core.templates import render

# What a console page shows, read from the database it is given.
PageContext = Callable[[Session], dict[str, Any]]


def console_page(
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


def redirect_with_flash(request: Request, url: str, message: str) -> RedirectResponse:
    """Post/redirect/get: the next page shows `message` once."""
    request.session["flash"] = message
    return RedirectResponse(url, status_code=303)


def local_target(target: str | None, default: str, *, within: str = "/") -> str:
    """`target` when it is a path of this site that starts with `within`, else `default`."""
    # Only local paths: "//evil.example" would be an open redirect, and browsers read a backslash as a
    # slash and drop tabs and newlines, so "/\\evil.example" and "/\t/evil.example" would be too.
    if (
        target
        and target.startswith(within)
        and target.startswith("/")
        and not target.startswith("//")
        and not any(c == "\\" or ord(c) < 32 or ord(c) == 127 for c in target)
    ):
        return target
    return default


def confirm_page(
    request: Request,
    *,
    message: str,
    action: str,
    confirm_label: str,
    back: str,
    section: str,
    fields: dict[str, str] | None = None,
) -> Response:
    """The confirmation step of an action with consequences, when its form came without `confirmed`.

    Console forms that need one carry data-confirm; with JavaScript static/js/confirm.js fetches this page
    and asks with its words in a dialog, so the page itself shows only without it. Either way nothing
    happens until the admin has read what will, with the numbers of the moment, and agreed.
    """
    return console_page(
        request,
        "confirm",
        {
            "message": message,
            "action": action,
            "confirm_label": confirm_label,
            "back": back,
            "fields": fields or {},
        },
        section=section,
    )


def validation_message(exc: ValidationError, labels: dict[str, str]) -> str:
    """A form's or query string's invalid fields as one sentence for the page: "Prompt id: Input should
    be a valid integer", naming each field by its label on the page."""
    problems = []
    for e in exc.errors():
        field = str(e["loc"][0]) if e["loc"] else ""
        problems.append(f"{labels.get(field, field)}: {e['msg']}")
    return "; ".join(problems) + "."


Fields = TypeVar("Fields", bound=BaseModel)


def read_fields(
    model: type[Fields], values: Mapping[str, str]
) -> tuple[Fields, dict[str, str], ValidationError | None]:
    """A GET form's fields (a page's filters) from its query string: (the fields, what was typed in those
    that failed, the error). With a bad value the fields are the others as given and the failing ones at
    their defaults, so the page shows the form again as the user filled it in, beside the message."""
    given = dict(values)
    try:
        return model.model_validate(given), {}, None
    except ValidationError as exc:
        failed = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        typed = {name: value for name, value in given.items() if name in failed}
        try:
            rest = model.model_validate({name: value for name, value in given.items() if name not in failed})
        except ValidationError:  # a rule across fields (no single field to leave out)
            rest = model()
        return rest, typed, exc


class FormRefused(Exception):
    """A console form refused by a domain rule: `page` is shown again with the rule's message."""

    def __init__(self, error: DomainError, page: str, context: PageContext, section: str | None) -> None:
        super().__init__(error.msg)
        self.error = error
        self.page = page
        self.context = context
        self.section = section


@contextmanager
def rerender_if_refused(
    page: str,
    context: PageContext,
    *,
    section: str | None = None,
    refusals: tuple[type[DomainError], ...] = (DomainError,),
) -> Iterator[None]:
    """Inside it, a refusal (by default any DomainError) ends the request as FormRefused for `page`, whose
    context is read afresh; other errors keep their own error page."""
    try:
        yield
    except refusals as exc:
        raise FormRefused(exc, page, context, section) from exc


def rerender_refused_form(request: Request, exc: FormRefused) -> Response:
    """The exception handler for FormRefused (app.main). It runs after the request's unit of work rolled
    back, so the page is read in a unit of work of its own."""
    with request.app.state.db.session() as db:
        return console_page(
            request,
            exc.page,
            exc.context(db),
            status_code=exc.error.status_code,
            error=exc.error.msg,
            section=exc.section,
        )
