"""Actions with consequences ask first, in a real Chromium: activate, roll back, cancel a round, deactivate a
user or a prompt open a dialog saying what will happen (with the real numbers); "Keep things as they are"
changes nothing, the confirm button acts. Without JavaScript the server asks on a page of its own.
Screenshots: test-artifacts/confirm-*.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from app.auth.models import Role, User
from app.core.db import utcnow
from app.policies import service as policies_service
from app.policies.models import PolicyStatus
from app.prompts.models import Prompt
from app.training.models import RoundStatus, TrainingRound
from tests.browser.conftest import screenshot, sign_in
from tests.factories import make_comparisons, make_training_round, make_user, publish_policy_version

pytestmark = pytest.mark.browser


def active_number(db) -> int:
    with db.session() as session:
        return policies_service.get_active(db=session).number


def keep_then_confirm(page: Page, button: str, expected: str, name: str) -> None:
    """Click `button`: the dialog says `expected`; keep things, then click again and confirm."""
    page.click(button)
    dialog = page.locator("dialog.confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".confirm-message")).to_contain_text(expected)
    screenshot(page, f"confirm-{name}", full_page=False)
    dialog.locator("text=Keep things as they are").click()
    expect(dialog).to_be_hidden()


def confirm(page: Page, button: str) -> None:
    page.click(button)
    dialog = page.locator("dialog.confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("button.confirm-go").click()


def test_activate_and_roll_back_ask_first(live_server, browser_page, tiny_policy_dir):
    page, db, settings = browser_page, live_server.db, live_server.settings
    make_user(db, "ada", role=Role.admin)
    v1 = publish_policy_version(settings, db, source_dir=tiny_policy_dir)
    publish_policy_version(settings, db, source_dir=tiny_policy_dir, number=2, parent_id=v1,
                           status=PolicyStatus.candidate)  # fmt: skip
    make_comparisons(db, 41)
    sign_in(page, live_server, "ada", next="/admin/policies")

    keep_then_confirm(page, "#policy-table button:has-text('Activate')", "Activate v2? v1 stops serving", "activate")
    expect(page.locator("dialog.confirm-dialog .confirm-message")).to_contain_text(
        f"41 ready pairs from v1 keep serving until the sampler has {settings.SAMPLER_LOW_WATER} of v2's ready"
    )
    assert active_number(db) == 1, "keeping things changed nothing"
    page.set_viewport_size({"width": 390, "height": 844})
    page.click("#policy-table button:has-text('Activate')")
    expect(page.locator("dialog.confirm-dialog")).to_be_visible()
    screenshot(page, "confirm-activate-390", full_page=False)
    page.locator("dialog.confirm-dialog button.confirm-go").click()
    expect(page.locator(".alert.success")).to_have_text("Policy v2 is active; the sampler switches to it.")
    assert active_number(db) == 2
    page.set_viewport_size({"width": 1280, "height": 900})

    keep_then_confirm(page, "button:has-text('Roll back to this')", "Roll back to v1? v2 stops serving", "rollback")
    assert active_number(db) == 2
    confirm(page, "button:has-text('Roll back to this')")
    expect(page.locator(".alert.success")).to_have_text("Policy v1 is active; the sampler switches to it.")
    assert active_number(db) == 1


def test_cancel_a_running_round_asks_first(live_server, browser_page):
    page, db = browser_page, live_server.db
    make_user(db, "ada", role=Role.admin)
    round_id = make_training_round(db, status=RoundStatus.running, stage="ppo", completed_stages=["snapshot",
                                   "reward_model"], started_at=utcnow(), worker_id="w")  # fmt: skip
    sign_in(page, live_server, "ada", next=f"/admin/rounds/{round_id}")
    keep_then_confirm(page, "button:has-text('Cancel round')", f"Cancel round {round_id}? Its trainer stops during ppo",
                      "cancel")  # fmt: skip
    with db.session() as session:
        assert not session.get(TrainingRound, round_id).cancel_requested
    confirm(page, "button:has-text('Cancel round')")
    expect(page.locator(".alert.success")).to_have_text(f"Round {round_id} is being cancelled; its worker stops it.")
    with db.session() as session:
        assert session.get(TrainingRound, round_id).cancel_requested


def test_deactivate_a_user_and_a_prompt_ask_first(live_server, browser_page):
    page, db = browser_page, live_server.db
    make_user(db, "ada", role=Role.admin)
    ann = make_user(db, "ann")
    (pair,) = make_comparisons(db, 1)
    sign_in(page, live_server, "ada", next="/admin/users")
    row = "tr:has-text('ann') button:has-text('Deactivate')"
    keep_then_confirm(page, row, "Deactivate ann? They are signed out everywhere", "deactivate-user")
    with db.session() as session:
        assert session.get(User, ann).is_active
    confirm(page, row)
    expect(page.locator(".alert.success")).to_contain_text("ann is now deactivated")
    with db.session() as session:
        assert not session.get(User, ann).is_active

    page.goto(live_server.url + "/admin/prompts")
    keep_then_confirm(page, "button:has-text('Deactivate')", "its 1 ready pair retires", "deactivate-prompt")
    confirm(page, "button:has-text('Deactivate')")
    expect(page.locator(".alert.success")).to_contain_text("deactivated; its ready pairs are retired")
    with db.session() as session:
        assert session.query(Prompt).filter(Prompt.is_active.is_(False)).count() == 1


def test_without_javascript_the_server_asks_on_a_page(live_server, browser: Browser, tiny_policy_dir):
    db, settings = live_server.db, live_server.settings
    make_user(db, "ada", role=Role.admin)
    v1 = publish_policy_version(settings, db, source_dir=tiny_policy_dir)
    publish_policy_version(settings, db, source_dir=tiny_policy_dir, number=2, parent_id=v1,
                           status=PolicyStatus.candidate)  # fmt: skip
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, live_server, "ada", next="/admin/policies")
        page.click("#policy-table button:has-text('Activate')")
        expect(page.locator("#confirm-step .confirm-message")).to_contain_text("Activate v2? v1 stops serving")
        screenshot(page, "confirm-page-nojs-390")
        page.click("text=Keep things as they are")
        page.wait_for_url(live_server.url + "/admin/policies")
        assert active_number(db) == 1
        page.click("#policy-table button:has-text('Activate')")
        page.click("#confirm-step button:has-text('Activate v2')")
        expect(page.locator(".alert.success")).to_have_text("Policy v2 is active; the sampler switches to it.")
        assert active_number(db) == 2
    finally:
        context.close()
