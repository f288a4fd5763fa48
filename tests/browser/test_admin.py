"""The admin console in a real Chromium: launching a round and watching it live, who may open it, and
screenshots of the main pages (test-artifacts/*.png; current copies live in docs/screenshots/)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.auth.models import Role
from app.training.models import RoundStatus
from tests.admin.seed import (
    claim_round,
    finish_round,
    ppo_points,
    record_snapshot,
    report,
    rm_points,
    seed_console,
)
from tests.browser.conftest import screenshot, sign_in
from tests.factories import make_comparisons, make_user
from trainer import metrics as M

pytestmark = pytest.mark.browser

RM_GATE_PASSED = {
    "value": 0.81, "limit": 0.6, "op": ">=", "what": "reward model held-out accuracy",
    "setting": "gates.min_rm_accuracy", "passed": True, "reason": "",
}  # fmt: skip


def test_admin_launches_a_round_and_watches_it_progress(live_server, browser_page):
    page, db = browser_page, live_server.db
    live_server.settings.ADMIN_POLL_S = 0.3  # the round page asks for news this often
    make_user(db, "ada", role=Role.admin)
    make_comparisons(db, 1)  # also registers an active policy version 1
    sign_in(page, live_server, "ada")

    page.click("text=Console")
    page.click(".subnav >> text=Rounds")
    page.click("summary:has-text('Settings')")
    page.fill("input[name='ppo.kl_coef']", "0.1")
    screenshot(page, "round-launch")
    page.click("button:has-text('Launch round')")

    page.wait_for_url(re.compile(r"/admin/rounds/\d+$"))
    round_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator(".alert.success")).to_contain_text(f"Round {round_id} is queued")
    expect(page.locator("#round-status")).to_have_text("queued")
    expect(page.locator("#round-steps")).to_have_text("waiting for a worker")
    expect(page.locator("pre.mono")).to_contain_text('"kl_coef": 0.1')

    # A worker takes the round and reports reward-model steps: the page follows without a reload.
    claim_round(db)
    record_snapshot(db, round_id)
    report(
        db,
        round_id,
        stage="reward_model",
        step=12,
        total=40,
        points=rm_points(range(1, 13)),
        completed=["snapshot"],
        log="reward_model 12/40 rm/train/loss=0.52\n",
    )
    expect(page.locator("#round-status")).to_have_text("running")
    expect(page.locator("#round-steps")).to_have_text("1 / 5 stages · reward model: step 12 / 40 (30%)")
    expect(page.locator("#stages li[data-stage=snapshot]")).to_have_class("done")
    expect(page.locator("#stages li[data-stage=reward_model]")).to_have_class("current")
    expect(page.locator("#round .bar")).to_have_attribute("aria-valuenow", "26")  # (1 + 12/40) of 5 stages
    expect(page.locator("#round-facts")).to_contain_text("From policyv1")  # known from the snapshot, without a reload
    expect(page.locator("#round-gates tr[data-gate=min_rm_accuracy]")).to_have_attribute("data-verdict", "pending")
    expect(page.locator("#round-log")).to_contain_text("reward_model 12/40")
    expect(page.locator("#chart-rm-loss canvas")).to_be_visible()
    # no validation loss measured yet (the reward model stops early only on enough data): one line, no legend
    expect(page.locator("#chart-rm-loss .u-legend")).to_have_count(0)
    expect(page.locator("#chart-ppo-kl .empty")).to_have_text("No points yet")

    # On into PPO: the PPO charts fill in and the stage moves on.
    report(
        db,
        round_id,
        stage="reward_model",
        step=40,
        total=40,
        points=[
            point | {"values": point["values"] | {M.RM_VALID_LOSS: 0.6}} if point["step"] in (20, 30, 40) else point
            for point in rm_points(range(13, 41))
        ],
        completed=["snapshot", "reward_model"],
        results={"reward_model": {"rm/eval/accuracy": 0.81}, "gates": {"rm_accuracy": RM_GATE_PASSED}},
    )
    expect(page.locator("#chart-rm-loss .u-legend")).to_contain_text("validation loss")
    report(
        db,
        round_id,
        stage="ppo",
        step=9,
        total=30,
        points=ppo_points(range(1, 10)),
        completed=["snapshot", "reward_model"],
        log="ppo 9/30 objective/kl=0.18\n",
    )
    expect(page.locator("#round-steps")).to_have_text("2 / 5 stages · ppo: step 9 / 30 (30%)")
    # The reward model's results and its gate's verdict appear as soon as the stage completes.
    expect(page.locator("#round-results")).to_contain_text("rm/eval/accuracy")
    expect(page.locator("#round-gates tr[data-gate=rm_accuracy]")).to_have_attribute("data-verdict", "passed")
    expect(page.locator("#stages li[data-stage=reward_model]")).to_have_class("done")
    expect(page.locator("#stages li[data-stage=ppo]")).to_have_class("current")
    for chart in ("ppo-reward", "ppo-kl", "ppo-entropy", "ppo-clipfrac"):
        expect(page.locator(f"#chart-{chart} canvas")).to_be_visible()
    expect(page.locator("#chart-ppo-kl canvas")).to_have_count(1)  # updated in place, not redrawn per poll

    # The gate refuses the result: the page reloads once and shows the verdict and the reason.
    finish_round(db, round_id, RoundStatus.rejected, error="held-out KL 9.1 > max_kl 8.0")
    expect(page.locator("#round-status")).to_have_text("rejected", timeout=15_000)
    expect(page.locator("#round-error")).to_have_text("held-out KL 9.1 > max_kl 8.0")
    expect(page.locator("button:has-text('Cancel round')")).to_have_count(0)


def test_annotator_cannot_open_the_console(live_server, browser_page):
    page = browser_page
    make_user(live_server.db, "ann", role=Role.annotator)
    sign_in(page, live_server, "ann")
    expect(page.locator("header nav")).not_to_contain_text("Console")
    for path in ("/admin", "/admin/rounds", "/admin/users"):
        response = page.goto(live_server.url + path)
        assert response.status == 403
        expect(page.locator(".error-message")).to_have_text("This page is for admins.")
    response = page.goto(live_server.url + "/api/v1/stats/progress")
    assert response.status == 403


def test_console_pages_render_with_a_day_of_data(live_server, browser_page):
    page, db = browser_page, live_server.db
    admin_id = make_user(db, "ada", role=Role.admin)
    seeded = seed_console(db, live_server.settings, admin_id)
    sign_in(page, live_server, "ada")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    page.goto(live_server.url + "/admin")
    expect(page.locator("#hourly-chart canvas")).to_be_visible()
    expect(page.locator("[data-stat=active_policy]")).to_have_text("v3")
    expect(page.locator("#current-round")).to_contain_text("ppo")
    screenshot(page, "dashboard")

    page.goto(f"{live_server.url}/admin/rounds/{seeded['round_id']}")
    expect(page.locator("#chart-ppo-clipfrac canvas")).to_be_visible()
    expect(page.locator("#round-steps")).to_have_text("2 / 5 stages · ppo: step 26 / 60 (43%)")
    screenshot(page, "round")

    page.goto(live_server.url + "/admin/annotators")
    expect(page.locator("#annotator-table")).to_contain_text("omar")
    screenshot(page, "annotators")
    page.goto(live_server.url + "/admin/policies")
    expect(page.locator("#rating-chart canvas")).to_be_visible()
    expect(page.locator("#policy-table tbody tr").first).to_contain_text("v3")  # newest first
    for path, name in (
        ("/admin/rounds", "rounds"),
        ("/admin/policies", "policies"),
        ("/admin/gold", "gold"),
        ("/admin/users", "users"),
        ("/admin/prompts", "prompts"),
    ):
        page.goto(live_server.url + path)
        screenshot(page, name)
    page.goto(live_server.url + "/admin/gold")
    page.click("#gold-table a >> nth=0")
    expect(page.locator("#judgment-table tbody tr")).to_have_count(5)
    screenshot(page, "comparison")
    assert errors == []
