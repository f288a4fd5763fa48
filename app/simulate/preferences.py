"""Scripted preference functions: (prompt text, response a, response b) -> score in [-1, 1], > 0 means a."""

from __future__ import annotations

import importlib
import typing
from collections.abc import Callable
from typing import Any

from trainer.embedded.task import PREFERENCES

Preference = Callable[[str, str, str], float]


def load(name: str) -> Preference:
    """A shipped preference by name (a quality of the embedded task, e.g. on_topic or correct, or overall)
    or 'module:function'."""
    if name in PREFERENCES:
        shipped: Preference = PREFERENCES[name]
        return shipped
    module_name, _, attribute = name.partition(":")
    if not attribute:
        raise ValueError(f"unknown preference '{name}': use one of {sorted(PREFERENCES)} or 'module:function'")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import preference '{name}': {exc}") from exc
    if not callable(function):
        raise ValueError(f"preference '{name}' is not callable")
    return typing.cast(Preference, function)  # its signature is the module author's promise


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The text a preference function judges against: the user turns of the prompt."""
    return "\n".join(m["content"] for m in messages if m.get("role") == "user")
