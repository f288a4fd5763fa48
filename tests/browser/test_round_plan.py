"""The round plan in a real Chromium: the launch form shows what a round would train on and the derived
defaults before launch, its Check button lists every failing check with the numbers and queues nothing,
and the dashboard shows the progress toward the next possible round (desktop and 390 px screenshots)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.auth.models import Role
from tests.browser.conftest import screenshot, sign_in
from tests.factories import make_user, publish_policy_version
from tests.training.conftest import add_preferences, fake_model_dir

pytestmark = pytest.mark.browser


def _policy(live_server, tmp_path) -> int:
    return publish_policy_version(live_server.settings, live_server.db, source_dir=fake_model_dir(tmp_path / "p"))


def test_the_launch_form_checks_a_round_before_launch(live_server, browser_page, tmp_path):
    page, db = browser_page, live_server.db
    make_user(db, "ada", role=Role.admin)
    add_preferences(db, annotator_id=make_user(db, "ann"), policy_version_id=_policy(live_server, tmp_path))
    sign_in(page, live_server, "ada", next="/admin/rounds")

    plan = page.locator("#round-plan")
    expect(plan).to_contain_text("Its snapshot has enough data.")
    expect(plan).to_contain_text("180 preferring one answer")
    expect(plan).to_contain_text("gates.min_rm_accuracy")
    page.click("summary:has-text('Settings')")
    derived = page.locator("label:has(input[name='reward.num_epochs']) .derived-mark")
    expect(derived).to_have_text("derived")
    expect(page.locator("input[name='data.heldout_fraction']")).to_have_value("0.3")
    screenshot(page, "round-plan")

    # Asking for more held-out pairs than there are: the check says what is missing and queues nothing.
    page.fill("input[name='data.min_heldout_pairs']", "500")
    page.click("#check-round")
    expect(plan).to_contain_text("Check of the settings below")
    expect(plan.locator(".plan-verdict")).to_have_text("It would fail at its snapshot:")
    shortfall = plan.locator(".shortfalls li")
    expect(shortfall).to_have_count(1)
    expect(shortfall).to_contain_text("held-out pairs:")
    expect(shortfall).to_contain_text("at least 500 needed")
    expect(shortfall).to_contain_text("more usable judgments")
    expect(page.locator("input[name='data.min_heldout_pairs']")).to_have_value("500")  # kept for editing
    expect(page.locator("#round-table")).to_contain_text("No rounds yet.")
    screenshot(page, "round-plan-impossible")
    page.set_viewport_size({"width": 390, "height": 844})
    plan.scroll_into_view_if_needed()
    screenshot(page, "round-plan-impossible-390", full_page=False)
    assert page.evaluate("document.querySelector('#round-plan').scrollWidth <= 390")  # nothing sticks out
    page.set_viewport_size({"width": 1280, "height": 900})

    # A bad value is refused with the field named, nothing queued.
    page.fill("input[name='data.min_heldout_pairs']", "0")
    page.click("#check-round")
    expect(page.locator(".alert").first).to_contain_text("data.min_heldout_pairs")
    expect(page.locator("#round-table")).to_contain_text("No rounds yet.")


def test_the_dashboard_shows_progress_toward_the_next_round(live_server, browser_page, tmp_path):
    page, db = browser_page, live_server.db
    make_user(db, "ada", role=Role.admin)
    add_preferences(
        db, annotator_id=make_user(db, "ann"), policy_version_id=_policy(live_server, tmp_path), n_prompts=12
    )
    sign_in(page, live_server, "ada", next="/admin")
    next_round = page.locator("#next-round")
    expect(next_round).to_contain_text("usable judgments for a round with the default settings")
    expect(next_round.locator("strong")).to_have_text("36 / 60")  # 6 held-out pairs so far: 1 per 6 judgments
    expect(next_round).to_contain_text("held-out pairs, at least 10 needed")
    screenshot(page, "dashboard-next-round")
    page.set_viewport_size({"width": 390, "height": 844})
    next_round.scroll_into_view_if_needed()
    screenshot(page, "dashboard-next-round-390", full_page=False)
