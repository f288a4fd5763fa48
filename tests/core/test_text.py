"""Every string a client sends is `Text` (app/core/text.py): NUL and lone surrogates are a 422 naming the
field, on SQLite and PostgreSQL alike, never a 500 (PostgreSQL cannot store either one)."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from app.core.text import TEXT_VALIDATOR

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
