"""A human-gated rollout in a real Chromium: the round page and the policies page show its evidence and
verdict, and an admin stops it (screenshots at desktop and phone widths in test-artifacts/)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.auth.models import Role
from app.comparisons.models import Choice
from app.core.db import utcnow
from app.policies.models import PolicyStatus
from app.rollout import service as rollout_service
from app.training.models import RoundStatus
from tests.browser.conftest import screenshot, sign_in
from tests.factories import (
    make_comparison,
    make_judgment,
    make_training_round,
    make_user,
    publish_policy_version,
    start_rollout,
)
from tests.training.conftest import fake_model_dir

pytestmark = pytest.mark.browser

VERDICT = {
    "decision": "rollout",
    "reason": "People decide: a 30% share of new pairs compares it with its parent (human-gated rollout); the "
    "held-out score gain +0.042 (95% interval -0.013 to +0.097) is shown as evidence only.",
    "score_gain": 0.042, "score_gain_low": -0.013, "score_gain_high": 0.097, "confidence": 0.95, "kl": 2.1,
    "max_kl": 8.0,
}  # fmt: skip


def test_the_rollout_is_shown_with_its_evidence_and_an_admin_stops_it(live_server, browser_page, tmp_path):
    page, db, settings = browser_page, live_server.db, live_server.settings
    model = fake_model_dir(tmp_path / "model")
    parent = publish_policy_version(settings, db, source_dir=model, number=1)
    candidate = publish_policy_version(
        settings, db, source_dir=model, number=2, status=PolicyStatus.candidate, parent_id=parent
    )
    round_id = make_training_round(
        db, status=RoundStatus.succeeded, policy_version_id=candidate, base_policy_version_id=parent,
        results={"activation": VERDICT},
    )  # fmt: skip
    rollout_id = start_rollout(settings, db, candidate_id=candidate, share=0.3)
    annotator = make_user(db, "judge")
    for choice in [Choice.a] * 9 + [Choice.b] * 4 + [Choice.tie]:
        comparison = make_comparison(db, version_a_id=candidate, version_b_id=parent)
        make_judgment(db, comparison_id=comparison, annotator_id=annotator, choice=choice)
    with db.session() as session:
        rollout_service.evaluate(db=session, rollout_id=rollout_id, now=utcnow())
    make_user(db, "ada", role=Role.admin)
    sign_in(page, live_server, "ada")

    page.goto(f"{live_server.url}/admin/rounds/{round_id}")
    block = page.locator("#round-activation")
    expect(block).to_contain_text("People decide")
    expect(block).to_contain_text("14 of at most 300")
    expect(block).to_contain_text("9 won, 4 lost, 1 tied by v2")
    screenshot(page, "rollout-round")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "rollout-round-390")

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/admin/policies")
    expect(page.locator("#running-rollout")).to_contain_text("v2 against v1, its parent, in 30% of new pairs")
    screenshot(page, "rollout-policies")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "rollout-policies-390")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.click("#running-rollout button[type=submit]")
    expect(page.locator(".alert")).to_contain_text("The rollout of v2 is stopped; v2 stays a candidate.")
    expect(page.locator("#running-rollout")).to_have_count(0)
    page.locator("#policy-table details.why").first.click()
    expect(page.locator("#policy-table")).to_contain_text("Rollout ended: Stopped by admin ada: 14 rollout judgments")
    screenshot(page, "rollout-stopped")


def test_the_round_page_shows_the_rollout_as_it_decides_without_a_reload(live_server, browser_page, tmp_path):
    page, db, settings = browser_page, live_server.db, live_server.settings
    settings.ADMIN_POLL_S = 0.3
    model = fake_model_dir(tmp_path / "model")
    parent = publish_policy_version(settings, db, source_dir=model, number=1)
    candidate = publish_policy_version(
        settings, db, source_dir=model, number=2, status=PolicyStatus.candidate, parent_id=parent
    )
    round_id = make_training_round(
        db, status=RoundStatus.succeeded, policy_version_id=candidate, base_policy_version_id=parent,
        results={"activation": VERDICT},
    )  # fmt: skip
    rollout_id = start_rollout(settings, db, candidate_id=candidate, share=0.3)
    make_user(db, "ada", role=Role.admin)
    sign_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/admin/rounds/{round_id}")
    block = page.locator("#round-activation")
    expect(block).to_contain_text("0 of at most 300")
    page.evaluate("window.notReloaded = true")

    annotator = make_user(db, "judge")
    for _ in range(30):
        comparison = make_comparison(db, version_a_id=candidate, version_b_id=parent)
        make_judgment(db, comparison_id=comparison, annotator_id=annotator, choice=Choice.a)
    with db.session() as session:
        rollout_service.evaluate(db=session, rollout_id=rollout_id, now=utcnow())

    expect(block.locator(".rollout")).to_have_attribute("data-status", "activated")
    expect(block).to_contain_text("People prefer the candidate")
    expect(block).to_contain_text("30 won, 0 lost, 0 tied by v2")
    assert page.evaluate("window.notReloaded") is True
    # the verdict sits in the card's flow (the annotation page's sticky .verdict bar once styled it)
    assert block.locator(".rollout-verdict").evaluate("p => getComputedStyle(p).position") == "static"
    screenshot(page, "rollout-round-decided")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "rollout-round-decided-390")
