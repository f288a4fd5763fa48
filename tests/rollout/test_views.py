"""The rollout API and the console: reading a rollout's evidence, stopping it, and activation that ends it."""

from __future__ import annotations

from app.auth.models import Role
from app.comparisons.models import Choice
from app.core.db import utcnow
from app.policies.models import PolicyStatus
from app.rollout import service as rollout_service
from app.training.models import RoundStatus
from tests.factories import (
    make_comparison,
    make_judgment,
    make_training_round,
    make_user,
    start_rollout,
)
from tests.helpers import csrf_from, login


def _judged(db, *, candidate: int, parent: int, wins: int, losses: int) -> None:
    annotator = make_user(db, "judge")
    for choice in [Choice.a] * wins + [Choice.b] * losses:
        comparison = make_comparison(db, version_a_id=candidate, version_b_id=parent)
        make_judgment(db, comparison_id=comparison, annotator_id=annotator, choice=choice)


def test_the_api_reads_a_rollouts_state_and_evidence(client, settings, db, admin_token, versions):
    parent, candidate = versions
    rollout_id = start_rollout(settings, db, candidate_id=candidate, share=0.3)
    _judged(db, candidate=candidate, parent=parent, wins=3, losses=1)
    with db.session() as session:
        rollout_service.evaluate(db=session, rollout_id=rollout_id, now=utcnow())
    response = client.get(f"/api/v1/rollouts/{rollout_id}", headers=admin_token)
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["candidate_number"], body["parent_number"], body["share"]) == ("running", 2, 1, 0.3)
    assert (body["battles"], body["wins"], body["losses"], body["ties"]) == (4, 3, 1, 0)
    assert body["rating_diff_low"] < 0 < body["rating_diff"] < body["rating_diff_high"]  # 4 judgments decide nothing
    assert [r["id"] for r in client.get("/api/v1/rollouts", headers=admin_token).json()] == [rollout_id]


def test_an_admin_stops_a_rollout_and_a_second_stop_says_how_it_ended(client, settings, db, admin_token, versions):
    _, candidate = versions
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    stopped = client.post(f"/api/v1/rollouts/{rollout_id}/stop", headers=admin_token)
    assert stopped.status_code == 200
    assert stopped.json()["status"] == "ended" and stopped.json()["ended_by"] == "root-admin"
    again = client.post(f"/api/v1/rollouts/{rollout_id}/stop", headers=admin_token)
    assert again.status_code == 409
    assert again.json()["detail"][0]["msg"].startswith(f"Rollout {rollout_id} already ended (ended): Stopped by admin")
    assert client.get("/api/v1/policies/2", headers=admin_token).json()["status"] == "candidate"


def test_rollout_routes_refuse_annotators_and_unknown_ids(client, settings, db, admin_token, annotator_token, versions):
    _, candidate = versions
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    assert client.get(f"/api/v1/rollouts/{rollout_id}", headers=annotator_token).status_code == 403
    assert client.post(f"/api/v1/rollouts/{rollout_id}/stop", headers=annotator_token).status_code == 403
    missing = client.get("/api/v1/rollouts/99", headers=admin_token)
    assert missing.status_code == 404 and missing.json()["detail"][0]["msg"] == "Rollout 99 does not exist."


def test_activating_through_the_api_during_a_rollout_decides_it(client, settings, db, admin_token, versions):
    _, candidate = versions
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    assert client.post("/api/v1/policies/2/activate", headers=admin_token).status_code == 200
    body = client.get(f"/api/v1/rollouts/{rollout_id}", headers=admin_token).json()
    assert body["status"] == "activated"
    assert body["reason"] == "Decided by admin: admin root-admin activated v2, the candidate."
    statuses = [v["status"] for v in client.get("/api/v1/policies", headers=admin_token).json()]
    assert statuses.count("active") == 1


def test_the_policies_page_shows_the_rollout_and_stops_it(client, settings, db, versions):
    parent, candidate = versions
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    make_user(db, "boss", role=Role.admin)
    login(client, "boss")
    page = client.get("/admin/policies")
    assert 'id="running-rollout"' in page.text and f'action="/admin/rollouts/{rollout_id}/stop"' in page.text
    assert "v2 against v1, its parent" in page.text
    response = client.post(
        f"/admin/rollouts/{rollout_id}/stop",
        data={"csrf_token": csrf_from(page.text), "next": "/admin/policies"},
        follow_redirects=True,
    )
    assert response.status_code == 200 and "The rollout of v2 is stopped; v2 stays a candidate." in response.text
    assert 'id="running-rollout"' not in response.text and "Rollout ended: Stopped by admin boss" in response.text
    # a stale page's second click: the page again, with how the rollout ended
    late = client.post(
        f"/admin/rollouts/{rollout_id}/stop", data={"csrf_token": csrf_from(page.text), "next": "/admin/policies"}
    )
    assert late.status_code == 409 and "already ended (ended): Stopped by admin boss" in late.text


def test_the_round_page_says_why_its_policy_was_not_activated(client, settings, db, versions):
    parent, candidate = versions
    verdict = {
        "decision": "candidate",
        "reason": "Not activated: held-out score gain -0.017 (95% interval -0.050 to -0.002): it scores worse "
        "than its parent. It stays a candidate; an admin may still activate it.",
        "score_gain": -0.017, "score_gain_low": -0.05, "score_gain_high": -0.002, "confidence": 0.95,
        "kl": 0.3, "max_kl": 8.0,
    }  # fmt: skip
    round_id = make_training_round(
        db, status=RoundStatus.succeeded, policy_version_id=candidate, results={"activation": verdict}
    )
    make_user(db, "boss", role=Role.admin)
    login(client, "boss")
    page = client.get(f"/admin/rounds/{round_id}").text
    assert 'id="round-activation"' in page and 'data-decision="candidate"' in page
    assert "it scores worse than its parent" in page and "95% interval -0.050 to -0.002" in page
    policies = client.get("/admin/policies").text
    assert "it scores worse than its parent" in policies
    assert PolicyStatus.candidate.value in policies


def _activation_block(html: str) -> str:
    """The round page's activation block (the live refresh swaps it in whole)."""
    return html.split('data-live="activation"', 1)[1].split('data-live="log"', 1)[0]


def test_the_round_pages_live_refresh_carries_the_activation_card(client, settings, db, versions):
    parent, candidate = versions
    verdict = {
        "decision": "rollout",
        "reason": "People decide: a 30% share of new pairs compares it with its parent (human-gated rollout).",
        "score_gain": 0.042, "score_gain_low": -0.013, "score_gain_high": 0.097, "confidence": 0.95,
        "kl": 2.1, "max_kl": 8.0,
    }  # fmt: skip
    running = make_training_round(db, status=RoundStatus.running)
    decided = make_training_round(
        db, status=RoundStatus.succeeded, policy_version_id=candidate, results={"activation": verdict}
    )
    make_user(db, "boss", role=Role.admin)
    login(client, "boss")
    # Before any decision the block is there, empty, for the refresh to fill.
    for url in (f"/admin/rounds/{running}", f"/admin/rounds/{running}/live"):
        assert 'id="round-activation"' not in _activation_block(client.get(url).text)

    live = _activation_block(client.get(f"/admin/rounds/{decided}/live").text)
    assert 'id="round-activation"' in live and 'data-decision="rollout"' in live and "People decide" in live
    assert "(95% interval -0.013 to +0.097)" in live

    # The rollout's judgments and verdict reach the refresh as they come, without a reload.
    rollout_id = start_rollout(settings, db, candidate_id=candidate, share=0.3)
    _judged(db, candidate=candidate, parent=parent, wins=3, losses=1)
    with db.session() as session:
        rollout_service.evaluate(db=session, rollout_id=rollout_id, now=utcnow())
    live = client.get(f"/admin/rounds/{decided}/live").text
    assert 'data-live="activation" data-rollout="running"' in live  # the page keeps polling while it runs
    assert "4 of at most" in _activation_block(live) and "3 won, 1 lost, 0 tied by v2" in _activation_block(live)
    client.post(
        f"/admin/rollouts/{rollout_id}/stop",
        data={"csrf_token": csrf_from(client.get("/admin/policies").text), "next": "/admin/policies"},
    )
    live = client.get(f"/admin/rounds/{decided}/live").text
    assert 'data-live="activation" data-rollout="ended"' in live
    assert "Stopped by admin boss" in _activation_block(live)
