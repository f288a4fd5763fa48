"""What a round's page says about it, in one place for every state: each stage's tick, how many stages are
done, the progress bar, the line under it, the table of gates, and the side effects against the parent.
Pure functions of the round's row (RoundRead), so the page, its live refresh, the API and the webhook
cannot disagree, and every end state is tested (tests/training/test_round_view.py).

A stage is one of:
    done         it completed (and, for a trainer stage, its gate passed)
    current      the round is running it now
    failed       the round failed in it
    rejected     it completed but its gate refused the result
    stopped      the round was cancelled while it ran
    pending      not reached (yet, while the round is queued or running)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainer.contract import (
    DISTINCT_1,
    DISTINCT_2,
    EOS_RATE,
    EVASION_RATE,
    RESPONSE_LENGTH,
    STAGE_ORDER,
    GateConfig,
    Stage,
)
from trainer.side_effects import change, parent_and_new

DONE, CURRENT, FAILED, REJECTED, STOPPED, PENDING = "done", "current", "failed", "rejected", "stopped", "pending"
LIVE_STATUSES = ("queued", "running")


def _status(value: Any) -> str:
    return getattr(value, "value", value)


def stage_at(*, status: str, stage: str, completed_stages: list[str]) -> str | None:
    """The stage the round is in, or stopped in: the stage it reported unless that one completed, then
    the first one not completed (a trainer that has not written its status yet is past the snapshot).
    A rejected round stopped at the last stage that completed: the gate checked right after it refused.
    None when every stage is done."""
    done = set(completed_stages)
    if _status(status) == "rejected":
        finished = [s for s in STAGE_ORDER if s in done and s != Stage.publish]
        return finished[-1] if finished else None
    if stage and stage not in done:
        return stage
    return next((s for s in STAGE_ORDER if s not in done), None)


def stage_states(*, status: str, stage: str, completed_stages: list[str], started: bool) -> dict[str, str]:
    """Each stage's state (see the module docstring), in stage order."""
    status = _status(status)
    at = stage_at(status=status, stage=stage, completed_stages=completed_stages)
    where = {"running": CURRENT, "failed": FAILED, "rejected": REJECTED, "cancelled": STOPPED if started else PENDING}
    states: dict[str, str] = {}
    for s in STAGE_ORDER:
        if s == at:
            states[s] = where.get(status, PENDING)
        else:
            states[s] = DONE if s in completed_stages else PENDING
    return states


def stages_done(states: dict[str, str]) -> int:
    return sum(state == DONE for state in states.values())


def round_fraction(states: dict[str, str], *, step: int, total_steps: int) -> float:
    """The bar: the share of stages done, plus the running stage's own share while it runs; so a
    finished round's bar always matches its "N / 5 stages"."""
    running = CURRENT in states.values() and total_steps > 0
    partial = min(1.0, step / total_steps) if running else 0.0
    return (stages_done(states) + partial) / len(states)


def _stage_name(stage: str) -> str:
    return stage.replace("_", " ")


def progress_line(round_: Any, states: dict[str, str]) -> str:
    """The line under the bar: stages done, and where the round is or where it stopped."""
    count = f"{stages_done(states)} / {len(states)} stages"
    status = _status(round_.status)
    at = next((s for s, state in states.items() if state not in (DONE, PENDING)), None)
    steps_known = at == round_.stage and round_.total_steps > 0
    steps = f"step {round_.step} / {round_.total_steps}" if steps_known else ""
    if status == "queued":
        return f"{count} · waiting for a worker" if stages_done(states) else "waiting for a worker"
    if status == "succeeded":
        return f"{count} · published"
    if status == "cancelled" and at is None:
        return f"{count} · cancelled before it started"
    if at is None:
        return count
    name = _stage_name(at)
    if status == "running":
        if not steps_known:
            return f"{count} · {name}: starting"
        return f"{count} · {name}: {steps} ({min(1.0, round_.step / round_.total_steps):.0%})"
    verb = {"failed": "failed in", "rejected": "rejected by the gate after", "cancelled": "cancelled during"}[status]
    return f"{count} · {verb} {name}" + (f" at {steps}" if steps and status != "rejected" else "")


@dataclass(frozen=True)
class GateRow:
    """One gate as the page lists it."""

    name: str
    what: str
    threshold: str  # e.g. ">= 0.6", "off"
    value: Any  # the measured value, or None
    verdict: str  # passed | failed | not reached | pending | off
    reason: str = ""


def _limit(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _threshold(op: str, limit: Any) -> str:
    return f"{OPERATORS.get(op, op)} {_limit(limit)}".strip()


OPERATORS = {">=": "≥", "<=": "≤"}

# Rounds stored before the trainer described its gates kept only {"value", "limit", "passed", "reason"}
# per gate: what each of its names checked (trainer/round.py, gate_verdicts), so such a round lists each
# gate once, with its setting, and not again as "not reached".
UNDESCRIBED_GATES = {
    "rm_accuracy": {"setting": "gates.min_rm_accuracy", "op": ">=", "what": "reward model held-out accuracy"},
    "finite": {"setting": "NaN/inf during PPO", "op": ">=", "what": "PPO losses and metrics finite (1 = yes)"},
    "kl": {
        "setting": "gates.max_kl",
        "op": "<=",
        "what": "KL of the new policy to the reference on held-out prompts (nats)",
    },
    "eos_rate": {"setting": "gates.min_eos_rate", "op": ">=", "what": "share of held-out answers that end with EOS"},
    "score_gain": {
        "setting": "gates.min_score_gain",
        "op": ">=",
        "what": "held-out reward-model score gain over the old policy",
    },
}


def gate_rows(*, results: dict, gates_config: dict, live: bool) -> list[GateRow]:
    """Every gate of the round: those the trainer checked (results["gates"], its verdicts, in the order it
    checked them), then each gate setting no verdict speaks for, as not reached (pending while the round
    runs) or off (a setting of None)."""
    rows = []
    gates = results.get("gates")
    verdicts = {
        name: UNDESCRIBED_GATES.get(name, {}) | verdict
        for name, verdict in (gates.items() if isinstance(gates, dict) else [])
        if isinstance(verdict, dict)
    }
    for name, verdict in verdicts.items():
        op, limit = verdict.get("op", ""), verdict.get("limit")
        rows.append(
            GateRow(
                name=name,
                what=str(verdict.get("what") or name.replace("_", " ")),
                threshold=_threshold(op, limit),
                value=verdict.get("value"),
                verdict="passed" if verdict.get("passed") else "failed",
                reason=str(verdict.get("reason", "")),
            )
        )
    checked = {str(v.get("setting", "")) for v in verdicts.values()}
    for field, info in GateConfig.model_fields.items():
        if f"gates.{field}" in checked:
            continue
        limit = gates_config.get(field)
        op = "<=" if field.startswith("max_") else ">="
        rows.append(
            GateRow(
                name=field,
                # The setting's help, less what it says about None (shown as "off" here).
                what=(info.description or field).split("; None")[0].rstrip("."),
                threshold="off" if limit is None else _threshold(op, limit),
                value=None,
                verdict="off" if limit is None else ("pending" if live else "not reached"),
            )
        )
    return rows


# ---- side effects ---------------------------------------------------------------------------------------

# Each side effect the evaluate stage measures (trainer/contract.py SIDE_EFFECTS): how the page names it and
# says what it counts, whether it is a share (shown in %), and which way is better (None: neither, e.g. length).
SIDE_EFFECT_FIGURES: dict[str, tuple[str, str, bool, str | None]] = {
    EVASION_RATE: ("refusals and evasions", "share matched by the evasion patterns", True, "lower"),
    DISTINCT_1: ("distinct-1", "distinct words / words", True, "higher"),
    DISTINCT_2: ("distinct-2", "distinct word pairs / pairs", True, "higher"),
    RESPONSE_LENGTH: ("answer length", "mean tokens per answer", False, None),
    EOS_RATE: ("answers that end", "share ending with EOS", True, "higher"),
}


@dataclass(frozen=True)
class SideEffectRow:
    """One side effect of a round: the parent's and the new policy's value on the same held-out prompts."""

    name: str  # the metric, e.g. eval/evasion_rate (the parent's is name + "_old" in the results)
    label: str
    hint: str  # what it counts
    share: bool  # a share in 0..1, shown in %
    better: str | None  # higher | lower | None (neither way is better in itself)
    parent: float | None  # None: not measured (e.g. a round run before the figure existed)
    new: float | None
    change: float | None  # new - parent; None unless both were measured
    tone: str  # good | bad | neutral: how the change reads, for its colour


def _tone(change: float | None, better: str | None) -> str:
    if change is None or better is None or abs(change) < 1e-12:
        return "neutral"
    return "good" if (change > 0) == (better == "higher") else "bad"


def side_effect_rows(results: dict) -> list[SideEffectRow]:
    """The round's side effects against its parent, once its evaluate stage completed; [] before."""
    evaluation = results.get(Stage.evaluate)
    if not isinstance(evaluation, dict):
        return []
    rows = []
    for name, (label, hint, share, better) in SIDE_EFFECT_FIGURES.items():
        parent, new = parent_and_new(evaluation, name)
        delta = change(evaluation, name)
        rows.append(SideEffectRow(name, label, hint, share, better, parent, new, delta, _tone(delta, better)))
    return rows
