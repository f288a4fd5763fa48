"""A round's page in every end state, in a real Chromium at desktop and phone widths: the stage ticks, the
"N / 5 stages" line and the bar agree, every gate is listed with its verdict, and the log is clean text.
Screenshots: test-artifacts/round-<state>-{desktop,390}.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.auth.models import Role
from app.core.db import utcnow
from app.policies.models import PolicyStatus
from app.training.models import RoundStatus
from tests.browser.conftest import screenshot, sign_in
from tests.factories import make_policy_version, make_training_round, make_user

pytestmark = pytest.mark.browser

GATES = {"min_rm_accuracy": 0.6, "max_kl": 8.0, "min_eos_rate": 0.5, "min_score_gain": 0.0}
ALL = ["snapshot", "reward_model", "ppo", "evaluate", "publish"]


def verdict(value, limit, op, what, setting, passed):
    reason = "" if passed else f"{what} is {value}, the gate is {op} {limit} ({setting})"
    return {"value": value, "limit": limit, "op": op, "what": what, "setting": setting, "passed": passed,
            "reason": reason}  # fmt: skip


RM = verdict(0.81, 0.6, ">=", "reward model held-out accuracy", "gates.min_rm_accuracy", True)
RM_LOW = verdict(0.52, 0.6, ">=", "reward model held-out accuracy", "gates.min_rm_accuracy", False)
FINITE = verdict(1.0, 1.0, ">=", "PPO losses and metrics finite (1 = yes)", "NaN/inf during PPO", True)
KL = verdict(2.4, 8.0, "<=", "KL of the new policy to the reference on held-out prompts (nats)", "gates.max_kl", True)
EOS = verdict(0.97, 0.5, ">=", "share of held-out answers that end with EOS", "gates.min_eos_rate", True)
GAIN = verdict(0.31, 0.0, ">=", "held-out reward-model score gain over the old policy", "gates.min_score_gain", True)
GAIN_LOW = verdict(-0.017, 0.0, ">=", "held-out reward-model score gain over the old policy", "gates.min_score_gain",
                   False)  # fmt: skip
STAGE_RESULTS = {
    "snapshot": {"pairs_train": 180, "pairs_eval": 20},
    "reward_model": {"rm/eval/accuracy": 0.81, "rm/eval/loss": 0.52},
    "ppo": {"objective/kl": 2.1, "objective/scores": 0.8},
    "evaluate": {"eval/score_gain": 0.31, "eval/kl": 2.4, "eval/eos_rate": 0.97},
}
LOG = "2026-12-03 10:00:01 INFO trainer.round: stage reward_model\nreward_model 40/40 rm/train/loss=0.31\n"

# state name -> (columns of the round, expected stage classes, "N / 5 stages" line, gate verdicts)
CASES = {
    "succeeded": (
        {
            "status": RoundStatus.succeeded,
            "stage": "publish",
            "completed_stages": ALL,
            "step": 4,
            "total_steps": 4,
            "results": {
                **STAGE_RESULTS,
                "gates": {"rm_accuracy": RM, "finite": FINITE, "kl": KL, "eos_rate": EOS, "score_gain": GAIN},
            },
        },
        ["done"] * 5,
        "5 / 5 stages · published",
        {"rm_accuracy": "passed", "finite": "passed", "kl": "passed", "eos_rate": "passed", "score_gain": "passed"},
    ),
    "failed-ppo": (
        {
            "status": RoundStatus.failed,
            "stage": "ppo",
            "completed_stages": ALL[:2],
            "step": 9,
            "total_steps": 30,
            "error": "Training failed (exit code 1): ppo: out of memory in stage ppo.",
            "results": {k: STAGE_RESULTS[k] for k in ALL[:2]} | {"gates": {"rm_accuracy": RM}},
        },
        ["done", "done", "failed", "pending", "pending"],
        "2 / 5 stages · failed in ppo at step 9 / 30",
        {
            "rm_accuracy": "passed",
            "max_kl": "not reached",
            "min_eos_rate": "not reached",
            "min_score_gain": "not reached",
        },
    ),
    "failed-snapshot": (
        {"status": RoundStatus.failed, "error": "Too few judgments for a held-out set: 2 held-out pairs, at least 10."},
        ["failed", "pending", "pending", "pending", "pending"],
        "0 / 5 stages · failed in snapshot",
        {"min_rm_accuracy": "not reached", "max_kl": "not reached"},
    ),
    "rejected-rm": (
        {
            "status": RoundStatus.rejected,
            "stage": "reward_model",
            "completed_stages": ALL[:2],
            "step": 40,
            "total_steps": 40,
            "error": "Rejected by a gate: reward model held-out accuracy is 0.52, the gate is >= 0.6",
            "results": {
                "snapshot": STAGE_RESULTS["snapshot"],
                "reward_model": {"rm/eval/accuracy": 0.52},
                "gates": {"rm_accuracy": RM_LOW},
            },
        },
        ["done", "rejected", "pending", "pending", "pending"],
        "1 / 5 stages · rejected by the gate after reward model",
        {"rm_accuracy": "failed", "max_kl": "not reached"},
    ),
    "rejected-evaluate": (
        {
            "status": RoundStatus.rejected,
            "stage": "evaluate",
            "completed_stages": ALL[:4],
            "step": 4,
            "total_steps": 4,
            "error": "Rejected by a gate: held-out reward-model score gain over the old policy is -0.017",
            "results": {
                **STAGE_RESULTS,
                "gates": {"rm_accuracy": RM, "finite": FINITE, "kl": KL, "eos_rate": EOS, "score_gain": GAIN_LOW},
            },
        },
        ["done", "done", "done", "rejected", "pending"],
        "3 / 5 stages · rejected by the gate after evaluate",
        {"kl": "passed", "score_gain": "failed"},
    ),
    "cancelled-running": (
        {
            "status": RoundStatus.cancelled,
            "stage": "reward_model",
            "completed_stages": ALL[:1],
            "step": 40,
            "total_steps": 40,
            "error": "Cancelled by an admin during stage reward_model.",
            "results": {"snapshot": STAGE_RESULTS["snapshot"]},
        },
        ["done", "stopped", "pending", "pending", "pending"],
        "1 / 5 stages · cancelled during reward model at step 40 / 40",
        {"min_rm_accuracy": "not reached"},
    ),
    "cancelled-queued": (
        {"status": RoundStatus.cancelled, "error": "Cancelled before it started."},
        ["pending"] * 5,
        "0 / 5 stages · cancelled before it started",
        {"min_rm_accuracy": "not reached"},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_round_page_in_each_end_state(live_server, browser_page, name):
    page, db = browser_page, live_server.db
    make_user(db, "ada", role=Role.admin)
    columns, classes, line, gates = CASES[name]
    started = {} if name in ("cancelled-queued",) else {"started_at": utcnow()}
    round_id = make_training_round(
        db, config={"gates": GATES}, log_tail=LOG, finished_at=utcnow(), **started, **columns
    )
    sign_in(page, live_server, "ada")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server.url}/admin/rounds/{round_id}")

    assert page.locator("#stages li").evaluate_all("items => items.map(li => li.className)") == classes
    expect(page.locator("#round-steps")).to_have_text(line)
    done = classes.count("done")
    expect(page.locator("#round .bar")).to_have_attribute("aria-valuenow", str(round(done * 20)))
    for gate, verdict_ in gates.items():
        expect(page.locator(f"#round-gates tr[data-gate={gate}]")).to_have_attribute("data-verdict", verdict_)
    expect(page.locator("#round-gates tbody tr")).to_have_count(len(page.locator("#round-gates tbody tr").all()))
    assert page.locator("#round-gates tbody tr").count() >= 4, "every gate is listed, reached or not"
    expect(page.locator("#round-log")).to_have_text(LOG if "snapshot" not in name else LOG)
    screenshot(page, f"round-{name}-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    sticking_out = page.evaluate(
        "[...document.querySelectorAll('[data-live] *')]"
        ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).map(e => e.tagName + '.' + e.className)"
    )
    screenshot(page, f"round-{name}-390")
    assert sticking_out == [], f"the stages, facts, results, gates and log fit a 390 px screen: {sticking_out}"
    screenshot(page, f"round-{name}-390")
    assert errors == []


# A candidate that answers more evasively than its parent, refused by the optional evasion gate.
EVALUATION = {
    "eval/score_gain": 0.42, "eval/kl": 3.1, "eval/eos_rate": 0.98, "eval/eos_rate_old": 0.91,
    "eval/evasion_rate": 0.73, "eval/evasion_rate_old": 0.45, "eval/distinct_1": 0.21, "eval/distinct_1_old": 0.29,
    "eval/distinct_2": 0.34, "eval/distinct_2_old": 0.52, "eval/response_length": 9.4,
    "eval/response_length_old": 15.1,
}  # fmt: skip


def test_the_side_effects_of_a_round_refused_by_its_evasion_gate(live_server, browser_page):
    from trainer.contract import GateConfig
    from trainer.round import gate_verdicts

    page, db = browser_page, live_server.db
    make_user(db, "ada", role=Role.admin)
    gates = GateConfig(**GATES, max_evasion_increase=0.05, max_length_change=0.5)
    results = {**STAGE_RESULTS, "evaluate": EVALUATION}
    verdicts = {"rm_accuracy": RM, "finite": FINITE} | gate_verdicts({"evaluate": EVALUATION}, gates)
    reasons = "; ".join(v["reason"] for v in verdicts.values() if not v["passed"])
    round_id = make_training_round(
        db, status=RoundStatus.rejected, stage="evaluate", completed_stages=ALL[:4], step=4, total_steps=4,
        config={"gates": gates.model_dump()}, results=results | {"gates": verdicts}, started_at=utcnow(),
        finished_at=utcnow(), error=f"Rejected by a gate: {reasons}", log_tail=LOG,
    )  # fmt: skip
    sign_in(page, live_server, "ada")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server.url}/admin/rounds/{round_id}")

    section = page.locator("#round-side-effects")
    expect(section.locator("h2")).to_have_text("Side effects")
    expect(section.locator("tbody tr")).to_have_count(5)
    evasions = section.locator('tr[data-side-effect="eval/evasion_rate"] td')
    expect(evasions.nth(1)).to_have_text("45.0%")
    expect(evasions.nth(2)).to_have_text("73.0%")
    expect(evasions.nth(3)).to_have_text("+28.0 pts")
    assert evasions.nth(3).locator(".delta").evaluate("e => getComputedStyle(e).color") == "rgb(201, 42, 42)"
    eos = section.locator('tr[data-side-effect="eval/eos_rate"] .delta')
    assert eos.evaluate("e => getComputedStyle(e).color") == "rgb(43, 138, 62)", "more answers end: good"
    expect(page.locator('#round-gates tr[data-gate="evasion_increase"]')).to_have_attribute("data-verdict", "failed")
    expect(page.locator('#round-gates tr[data-gate="length_change"]')).to_have_attribute("data-verdict", "passed")
    expect(page.locator('#round-gates tr[data-gate="min_distinct_2_ratio"]')).to_have_attribute("data-verdict", "off")
    expect(page.locator("#round-error")).to_contain_text("marked as evasions (parent 45.0%, new 73.0%) is 0.28")
    screenshot(page, "round-side-effects-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    sticking_out = page.evaluate(
        "[...document.querySelectorAll('[data-live] *')]"
        ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).map(e => e.tagName + '.' + e.className)"
    )
    screenshot(page, "round-side-effects-390")
    assert sticking_out == [], f"the side effects fit a 390 px screen: {sticking_out}"
    table = page.locator("#round-side-effects .table-scroll")
    widths = table.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert widths[0] <= widths[1], f"the table needs no sideways scrolling: {widths}"
    assert errors == []


def test_the_policies_page_charts_side_effects_across_versions(live_server, browser_page):
    page, db = browser_page, live_server.db
    make_user(db, "ada", role=Role.admin)
    old = {k: v for k, v in EVALUATION.items() if k.endswith("_old")}
    v1 = make_policy_version(db, number=1, status=PolicyStatus.archived)
    v2 = make_policy_version(db, number=2, parent_id=v1, status=PolicyStatus.archived,
                             metrics=old | {k.removesuffix("_old"): v * 0.95 for k, v in old.items()})  # fmt: skip
    make_policy_version(db, number=3, parent_id=v2, metrics=EVALUATION)
    sign_in(page, live_server, "ada")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server.url}/admin/policies")
    for chart in ("side-effect-shares", "side-effect-length"):
        expect(page.locator(f"#chart-{chart} canvas")).to_have_count(1)
    expect(page.locator("#side-effect-charts .u-legend").first).to_contain_text("refusals and evasions")
    page.locator("#side-effect-charts").scroll_into_view_if_needed()
    screenshot(page, "policies-side-effects-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)  # the charts follow their container's width
    widest = page.evaluate("Math.max(...[...document.querySelectorAll('#side-effect-charts canvas')]"
                           ".map(c => c.getBoundingClientRect().right))")  # fmt: skip
    screenshot(page, "policies-side-effects-390")
    assert widest <= 390, "the charts fit a 390 px screen"
    assert errors == []
