"""The page helpers every console page shares: a refused form re-rendered by one handler after the
request's unit of work rolled back, and return targets that stay on this site."""

from __future__ import annotations

import pytest
from fastapi.responses import Response

from app.admin import service as admin_service
from app.api.deps import SessionDep
from app.core.errors import Conflict, NotFound
from app.core.pages import local_target, rerender_if_refused

HTML = {"accept": "text/html"}


def _stored_guidelines(db) -> str:
    with db.session() as session:
        return admin_service.get_guidelines(db=session)


def test_a_refused_form_keeps_nothing_and_shows_its_page_with_the_message_and_status(app, client, db):
    def write_then_refuse(db: SessionDep) -> Response:
        page = lambda page_db: {"markdown": admin_service.get_guidelines(db=page_db)}  # noqa: E731
        with rerender_if_refused("guidelines", page):
            admin_service.set_guidelines(db=db, markdown="written before the refusal")
            raise Conflict("Refused after a write.")

    app.add_api_route("/refuse", write_then_refuse, methods=["POST"])
    response = client.post("/refuse", headers=HTML)
    assert response.status_code == 409
    assert 'class="alert error" role="alert">Refused after a write.<' in response.text
    assert 'aria-current="page">Guidelines<' in response.text  # the page of the form, with its navigation
    # The page is read after the rollback: the write made before the refusal is neither shown nor stored.
    assert "written before the refusal" not in response.text
    assert _stored_guidelines(db) == ""


def test_an_error_that_is_not_a_refusal_of_the_form_keeps_its_own_error_page(app, client, db):
    def refuse_only_conflicts(db: SessionDep) -> Response:
        with rerender_if_refused("guidelines", lambda _db: {"markdown": ""}, refusals=(Conflict,)):
            admin_service.set_guidelines(db=db, markdown="written before the error")
            raise NotFound("No such thing.")

    app.add_api_route("/missing", refuse_only_conflicts, methods=["POST"])
    response = client.post("/missing", headers=HTML)
    assert response.status_code == 404
    assert "No such thing." in response.text and 'role="alert"' not in response.text
    assert _stored_guidelines(db) == ""


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/admin/prompts?status=inactive", "/admin/prompts?status=inactive"),
        ("/account", "/back"),  # on this site, but outside the console
        ("https://evil.example/admin", "/back"),
        ("//evil.example/admin", "/back"),
        ("/admin\\@evil.example", "/back"),
        ("/admin\t/x", "/back"),
        ("", "/back"),
    ],
)
def test_return_targets_stay_on_this_site_and_within_their_part(target, expected):
    assert local_target(target, "/back", within="/admin") == expected


@pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "/\t/evil.example", "evil.example", None])
def test_a_target_off_this_site_falls_back_to_the_default(target):
    assert local_target(target, "/") == "/"
    assert local_target("/annotate?x=1", "/") == "/annotate?x=1"
