"""The console's launch form for a training round: one input per configuration field, built from the
defaults and the JSON Schema that app.training.schemas publishes, and the overrides read back from a
submitted form. Validation stays with the training domain (training_service.launch): this module only
turns strings into the nested dict of changed fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from trainer.defaults import Derived

SECTION_TITLES = {
    "": "Round",
    "data": "Training data",
    "reward": "Reward model",
    "ppo": "PPO",
    "evaluate": "Held-out evaluation",
    "gates": "Gates: publish only if",
}


@dataclass(frozen=True)
class Field:
    name: str  # dotted path in the configuration, e.g. "ppo.kl_coef"
    label: str
    kind: str  # integer | number | boolean | choice | text | lines (a list of strings, one per line)
    value: str  # what the input shows; "" stands for None
    options: tuple[str, ...]
    nullable: bool
    help: str
    derived: str = ""  # why the default was derived from the policy's or the data's size; "" when fixed


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    fields: list[Field]


def shown(value: object) -> str:
    """A configuration value as an input shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "\n".join(map(str, value))
    return str(value)


def lines(text: str) -> list[str]:
    """A list field's entries as typed, one per line; blank lines are dropped, nothing else is trimmed (a
    pattern's spaces matter)."""
    return [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]


def _resolve(prop: dict, schema: dict) -> dict:
    ref = prop.get("$ref") or next((p["$ref"] for p in prop.get("allOf", []) if "$ref" in p), None)
    return schema["$defs"][ref.rsplit("/", 1)[1]] if ref else prop


def _field(name: str, prop: dict, value: str) -> Field:
    variants = prop.get("anyOf", [prop])
    nullable = any(v.get("type") == "null" for v in variants)
    main: dict[str, Any] = next((v for v in variants if v.get("type") != "null"), {})
    options = tuple(shown(o) for o in main.get("enum", ()))
    kind = (
        "choice"
        if options
        else {"integer": "integer", "number": "number", "boolean": "boolean", "array": "lines"}.get(
            main.get("type", ""), "text"
        )
    )
    return Field(
        name=name,
        label=name.rsplit(".", 1)[-1].replace("_", " "),
        kind=kind,
        value=value,
        options=options or (("true", "false") if kind == "boolean" else ()),
        nullable=nullable,
        help=prop.get("description", ""),
    )


def sections(
    defaults: dict,
    schema: dict,
    submitted: Mapping[str, str] | None = None,
    derived: Mapping[str, Derived] | None = None,
) -> list[Section]:
    """Every field of the configuration, grouped by section, showing `submitted` values over defaults and
    marking the `derived` ones (app/training/plan.py) with their reason."""
    submitted = submitted or {}
    derived = derived or {}
    top = Section("", SECTION_TITLES[""], [])
    result = [top]
    for key, prop in schema["properties"].items():
        if isinstance(defaults[key], dict):
            section = Section(key, SECTION_TITLES.get(key, key), [])
            for sub, sub_prop in _resolve(prop, schema)["properties"].items():
                name = f"{key}.{sub}"
                field = _field(name, sub_prop, submitted.get(name, shown(defaults[key][sub])))
                if name in derived:
                    field = replace(field, derived=derived[name].reason)
                section.fields.append(field)
            result.append(section)
        else:
            top.fields.append(_field(key, prop, submitted.get(key, shown(defaults[key]))))
    return result


def overrides(form: Mapping[str, str], defaults: dict) -> dict:
    """The fields whose submitted text differs from the default, nested like the configuration. Values
    stay strings (the configuration's model converts and checks them); a blank field means None."""
    changed: dict = {}
    for key, default in defaults.items():
        if isinstance(default, dict):
            prefix = f"{key}."
            inner = overrides({k.removeprefix(prefix): v for k, v in form.items() if k.startswith(prefix)}, default)
            if inner:
                changed[key] = inner
            continue
        raw = form.get(key)
        if raw is None:
            continue
        if isinstance(default, list):
            if lines(raw) != default:
                changed[key] = lines(raw)
            continue
        if raw.strip() == shown(default):
            continue
        changed[key] = raw.strip() or None
    return changed
