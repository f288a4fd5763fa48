"""Every string a client sends is `Text` (app/core/text.py): NUL and lone surrogates are a 422 naming the
field, on SQLite and PostgreSQL alike, never a 500 (PostgreSQL cannot store either one)."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from app.auth.models import Role
from app.core.text import TEXT_VALIDATOR
from tests.factories import make_user
from tests.helpers import csrf_from, login

PARAM_KINDS = ("path_params", "query_params", "header_params", "cookie_params", "body_params")


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def _plain_strings(annotation, metadata: list, where: str, seen: set) -> Iterator[str]:
    """Paths under `where` whose type is str without the Text validator."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        yield from _plain_strings(base, [*metadata, *extra], where, seen)
    elif annotation is str:
        if TEXT_VALIDATOR not in metadata:
            yield where
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation not in seen:
            seen.add(annotation)
            for name, field in annotation.model_fields.items():
                yield from _plain_strings(field.annotation, field.metadata, f"{where}.{name}", seen)
    elif typing.get_origin(annotation) in (typing.Union, types.UnionType, list, set, tuple, dict):
        for index, arg in enumerate(typing.get_args(annotation)):
            keep = metadata if typing.get_origin(annotation) in (typing.Union, types.UnionType) else []
            yield from _plain_strings(arg, keep, f"{where}[{index}]", seen)


def request_strings_without_text(app) -> list[str]:
    found = []
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute):
            continue
        label = f"{sorted(context.methods)} {context.path}"
        for dependant in _dependants(context.dependant):
            for kind in PARAM_KINDS:
                for field in getattr(dependant, kind):
                    info = field.field_info
                    found += _plain_strings(info.annotation, info.metadata, f"{label} {field.name}", set())
    return found


def test_every_request_string_is_text(app):
    assert request_strings_without_text(app) == []


# --- NUL and a lone surrogate into every string a client sends ------------------------------------------

BAD_TEXT = {"nul": "a\x00b", "surrogate": "\ud800"}


def _resolve(schema: dict, components: dict) -> dict:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _string_slots(schema: dict, components: dict, depth: int = 0) -> Iterator[tuple[list, typing.Callable]]:
    """(loc below the body, a function that builds a value with the bad text at that loc), for every
    string in a JSON schema: object properties, array items, nullable variants."""
    schema = _resolve(schema, components)
    if depth > 6:
        return
    variants = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
    if variants:
        for variant in variants:
            yield from _string_slots(variant, components, depth + 1)
    elif schema.get("type") == "string" and "enum" not in schema and schema.get("format") != "binary":
        yield [], lambda bad: bad
    elif schema.get("type") == "object":
        for name, prop in schema.get("properties", {}).items():
            for loc, build in _string_slots(prop, components, depth + 1):
                yield [name, *loc], lambda bad, name=name, build=build: {name: build(bad)}
    elif schema.get("type") == "array":
        for loc, build in _string_slots(schema.get("items", {}), components, depth + 1):
            yield [0, *loc], lambda bad, build=build: [build(bad)]


def api_string_inputs(openapi: dict) -> Iterator[tuple[str, str, str, list, typing.Callable]]:
    """(method, path, where, loc, build) for every string query parameter and JSON body string."""
    components = openapi.get("components", {}).get("schemas", {})
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            concrete = path
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    concrete = concrete.replace("{" + parameter["name"] + "}", "1")
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    for loc, build in _string_slots(parameter["schema"], components):
                        if not loc:
                            yield method, concrete, "query", ["query", parameter["name"]], build
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                for loc, build in _string_slots(body["schema"], components):
                    yield method, concrete, "json", ["body", *loc], build


@pytest.mark.parametrize("bad", BAD_TEXT.values(), ids=BAD_TEXT.keys())
def test_bad_text_in_any_api_string_is_a_422_naming_it(client, admin_token, bad):
    openapi = client.get("/openapi.json").json()
    inputs = list(api_string_inputs(openapi))
    assert len(inputs) > 15
    wrong = []
    for method, path, where, loc, build in inputs:
        if where == "query":
            if bad == BAD_TEXT["surrogate"]:
                # A URL carries UTF-8 bytes: a surrogate cannot be written in one, and an encoded one
                # (%ED%A0%80) is decoded to replacement characters, which are valid text.
                continue
            response = client.request(method, path, params={loc[1]: bad}, headers=admin_token)
        else:
            body = json.dumps(build(bad))  # json escapes the surrogate as \ud800, as a client would
            response = client.request(
                method, path, content=body, headers={**admin_token, "content-type": "application/json"}
            )
        locs = [e["loc"] for e in response.json()["detail"]] if response.status_code == 422 else []
        if loc not in locs:
            wrong.append(f"{method.upper()} {path} {loc}: {response.status_code} {response.text[:200]}")
        assert client.get("/api/v1/me", headers=admin_token).status_code == 200  # the database still answers
    assert not wrong, "\n".join(wrong)


def console_form_strings(app) -> Iterator[tuple[str, str]]:
    """(path, field) of every string field of the console's and the sign-in page's forms."""
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute) or "POST" not in context.methods:
            continue
        path = context.path.replace("{user_id}", "1").replace("{prompt_id}", "1").replace("{comparison_id}", "1")
        for dependant in _dependants(context.dependant):
            for field in dependant.body_params:
                if field.field_info.annotation is str:
                    yield path, field.name


def test_nul_in_any_console_form_field_is_a_422_naming_it(app, client, db):
    make_user(db, "boss", role=Role.admin)
    assert login(client, "boss").status_code == 303
    csrf = csrf_from(client.get("/admin").text)
    fields = list(console_form_strings(app))
    assert ("/login", "username") in fields and ("/admin/gold", "comparison_id") in fields
    wrong = []
    for path, name in fields:
        response = client.post(path, data={"csrf_token": csrf, name: BAD_TEXT["nul"]}, follow_redirects=False)
        locs = [e["loc"] for e in response.json()["detail"]] if response.status_code == 422 else []
        if ["body", name] not in locs:
            wrong.append(f"POST {path} {name}: {response.status_code}")
    assert not wrong, "\n".join(wrong)
    assert client.get("/admin").status_code == 200  # still signed in, the database still answers


UPLOAD_WITH_BAD_TEXT = (
    b'{"prompt": "a\\u0000b"}\n{"prompt": "\\ud800"}\n{"prompt": "fine"}\n'
    b'{"messages": [{"role": "user", "content": "x\\u0000"}]}\n'
)


def test_an_upload_reports_bad_text_lines(client, admin_token):
    refused = client.post(
        "/api/v1/prompts/import",
        headers=admin_token,
        files={"file": ("p.jsonl", UPLOAD_WITH_BAD_TEXT, "application/json")},
    )
    assert refused.status_code == 422
    assert "line 1: prompt: must not contain NUL" in refused.text and "line 2: prompt: must be valid" in refused.text
    skipped = client.post(
        "/api/v1/prompts/import",
        params={"skip_bad_lines": True},
        headers=admin_token,
        files={"file": ("p.jsonl", UPLOAD_WITH_BAD_TEXT, "application/json")},
    )
    assert skipped.status_code == 200
    assert skipped.json()["created"] == 1 and [e["line"] for e in skipped.json()["errors"]] == [1, 2, 4]


def test_a_console_upload_reports_bad_text_lines(client, db):
    make_user(db, "boss", role=Role.admin)
    assert login(client, "boss").status_code == 303
    csrf = csrf_from(client.get("/admin").text)
    response = client.post(
        "/admin/prompts/import",
        data={"csrf_token": csrf, "skip_bad_lines": "true"},
        files={"file": ("p.jsonl", UPLOAD_WITH_BAD_TEXT, "application/json")},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "Imported 1 prompts" in response.text and "3 bad lines skipped" in response.text


# A raw NUL in a multipart header: clients percent-encode it, so the body is written by hand.
NUL_NAMED_UPLOAD = (
    b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a\x00b.jsonl"\r\n'
    b'Content-Type: application/octet-stream\r\n\r\n{"prompt": "hello"}\n\r\n--XX--\r\n'
)


def test_an_upload_whose_file_name_has_a_nul_is_a_422(client, admin_token):
    response = client.post(
        "/api/v1/prompts/import",
        content=NUL_NAMED_UPLOAD,
        headers={**admin_token, "Content-Type": "multipart/form-data; boundary=XX"},
    )
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["file"], response.text
    named = client.post(
        "/api/v1/prompts/import",
        params={"source": "sheet"},
        content=NUL_NAMED_UPLOAD,
        headers={**admin_token, "Content-Type": "multipart/form-data; boundary=XX"},
    )
    assert named.status_code == 200 and named.json()["created"] == 1  # a given source stands in for the name


def test_a_console_upload_whose_file_name_has_a_nul_is_refused_on_its_page(client, db):
    make_user(db, "boss", role=Role.admin)
    assert login(client, "boss").status_code == 303
    csrf = csrf_from(client.get("/admin").text)
    body = NUL_NAMED_UPLOAD.replace(
        b"--XX--", b'--XX\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n' + csrf.encode() + b"\r\n--XX--"
    )
    response = client.post(
        "/admin/prompts/import",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=XX", "Accept": "text/html"},
    )
    assert response.status_code == 422 and "The file name must not contain NUL" in response.text
