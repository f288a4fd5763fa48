"""Scripted preference functions: (prompt text, response a, response b) -> score in [-1, 1], > 0 means a."""

from __future__ import annotations

import functools
import importlib
import numbers
import typing
from collections.abc import Callable
from typing import Any

from trainer.embedded.judge import PREFERENCES
from trainer.embedded.task import make_corpus

Preference = Callable[[str, str, str], float]
SHIPPED: tuple[str, ...] = tuple(PREFERENCES)  # the names `load` knows without a module


class PreferenceError(ValueError):
    """A preference function that raised or returned something other than a number in [-1, 1]."""


def load(name: str) -> Preference:
    """A shipped preference by name (a quality of the embedded task, e.g. on_topic or correct, or overall)
    or 'module:function', tried on a few of the embedded task's answers before it is returned, and checked
    on every later call (see `checked`). Raises ValueError with a message for the user: unknown, not
    importable, or misbehaving on a trial."""
    if name in PREFERENCES:
        return checked(name, PREFERENCES[name])
    module_name, _, attribute = name.partition(":")
    if not attribute:
        raise ValueError(f"unknown preference '{name}': use one of {sorted(PREFERENCES)} or 'module:function'")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import preference '{name}': {exc}") from exc
    if not callable(function):
        raise ValueError(f"preference '{name}' is not callable")
    preference = checked(name, typing.cast(Preference, function))
    for prompt, a, b in trial_inputs():  # fail before any judging or training, not midway through a run
        preference(prompt, a, b)
    return preference


def checked(name: str, function: Preference) -> Preference:
    """`function` with every result checked: a raise or a value that is not a finite number in [-1, 1]
    becomes a PreferenceError naming the preference and the answers it was judging (a scripted annotator
    must never send a verdict it did not reach)."""

    @functools.wraps(function)
    def preference(prompt: str, a: str, b: str) -> float:
        try:
            score = function(prompt, a, b)
        except Exception as exc:
            raise PreferenceError(f"preference '{name}' raised {exc!r} on {_shown(prompt, a, b)}") from exc
        if isinstance(score, bool) or not isinstance(score, numbers.Real) or not -1 <= score <= 1:
            raise PreferenceError(
                f"preference '{name}' returned {score!r} on {_shown(prompt, a, b)}: it must return a number "
                "in [-1, 1] (> 0 prefers the first answer, < 0 the second, 0 a tie)"
            )
        return float(score)

    return preference


def trial_inputs(n: int = 8) -> list[tuple[str, str, str]]:
    """(prompt, a, b) triples from the embedded task: answers to one prompt, different and identical."""
    examples = make_corpus(n + 1, seed=0)
    triples = [(e.prompt, e.response, other.response) for e, other in zip(examples, examples[1:], strict=False)]
    return [*triples, (examples[0].prompt, examples[0].response, examples[0].response)]


def _shown(prompt: str, a: str, b: str) -> str:
    return f"prompt {prompt[:60]!r}, a {a[:60]!r}, b {b[:60]!r}"


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The text a preference function judges against: the user turns of the prompt."""
    return "\n".join(m["content"] for m in messages if m.get("role") == "user")
