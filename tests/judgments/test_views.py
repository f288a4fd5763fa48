"""POST /api/v1/judgments: the same rules for token clients and the browser page, and clear refusals."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from app.comparisons.models import Comparison, ComparisonStatus
from app.core.db import utcnow
from app.judgments.models import Judgment
from app.queue.models import QueueLock
from tests.factories import make_comparisons, make_user
from tests.helpers import csrf_from, login


def judgments(db):
    with db.session() as session:
        return list(session.scalars(select(Judgment).order_by(Judgment.id)))


def shown_left(db, comparison_id):
    with db.session() as session:
        return session.scalar(select(QueueLock.left).where(QueueLock.comparison_id == comparison_id))


def test_a_token_client_judges_and_a_retry_stores_nothing_new(client, db, annotator_token):
    make_comparisons(db, 1)
    pair = client.get("/api/v1/queue/next", headers=annotator_token).json()
    left = shown_left(db, pair["comparison_id"])
    body = {
        "comparison_id": pair["comparison_id"],
        "choice": "right",
        "strength": "clearly",
        "rationale": "More precise.",
        "client_request_id": "r-1",
        "time_spent_ms": 5100,
    }
    first = client.post("/api/v1/judgments", json=body, headers=annotator_token)
    assert first.status_code == 201
    stored = first.json()
    assert stored["choice"] == ("b" if left == "a" else "a")
    assert (stored["strength"], stored["shown_left"], stored["channel"]) == ("clearly", left, "api")
    assert stored["client_time_spent_ms"] == 5100 and stored["time_spent_ms"] >= 0
    retry = client.post("/api/v1/judgments", json=body, headers=annotator_token)
    assert (retry.status_code, retry.json()) == (200, stored)
    assert len(judgments(db)) == 1


def test_an_unknown_choice_is_422_and_the_annotator_can_continue(client, db, annotator_token):
    make_comparisons(db, 1)
    pair_id = client.get("/api/v1/queue/next", headers=annotator_token).json()["comparison_id"]
    response = client.post("/api/v1/judgments", json={"comparison_id": pair_id, "choice": "a"}, headers=annotator_token)
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "choice"] and "'left', 'right', 'tie' or 'both_bad'" in error["msg"]
    assert judgments(db) == []
    ok = client.post("/api/v1/judgments", json={"comparison_id": pair_id, "choice": "tie"}, headers=annotator_token)
    assert ok.status_code == 201


def test_an_over_long_rationale_is_422_with_the_limit(client, db, annotator_token, settings):
    make_comparisons(db, 1)
    pair_id = client.get("/api/v1/queue/next", headers=annotator_token).json()["comparison_id"]
    limit = settings.JUDGMENT_RATIONALE_MAX_CHARS
    response = client.post(
        "/api/v1/judgments",
        headers=annotator_token,
        json={"comparison_id": pair_id, "choice": "left", "rationale": "x" * (limit + 1)},
    )
    assert response.status_code == 422
    message = f"Rationale is limited to {limit} characters (got {limit + 1})."
    assert response.json()["detail"] == [{"loc": ["body", "rationale"], "type": "invalid", "msg": message}]
    assert judgments(db) == []


def test_refusals_name_the_problem_and_store_nothing(client, db, annotator_token):
    held, other, retired = make_comparisons(db, 3)
    assert client.get("/api/v1/queue/next", headers=annotator_token).json()["comparison_id"] == held
    me = client.get("/api/v1/me", headers=annotator_token).json()["id"]
    with db.session() as session:
        session.execute(update(Comparison).where(Comparison.id == retired).values(status=ComparisonStatus.retired))
        # By hand: the queue never hands out a retired pair, yet a lock taken before it was retired remains.
        session.add(
            QueueLock(
                comparison_id=retired, annotator_id=me, left="a", slot=1, expires_at=utcnow() + timedelta(minutes=5)
            )
        )
    cases = {
        other: (409, "is not reserved for you"),
        retired: (409, "was retired"),
        424242: (404, "Pair 424242 does not exist."),
    }
    for comparison_id, (status, message) in cases.items():
        response = client.post(
            "/api/v1/judgments", json={"comparison_id": comparison_id, "choice": "left"}, headers=annotator_token
        )
        assert response.status_code == status, comparison_id
        assert message in response.json()["detail"][0]["msg"]
    assert (
        client.post(
            "/api/v1/judgments", json={"comparison_id": 2**40, "choice": "left"}, headers=annotator_token
        ).status_code
        == 422
    )
    assert judgments(db) == []
    assert (
        client.post(
            "/api/v1/judgments", json={"comparison_id": held, "choice": "left"}, headers=annotator_token
        ).status_code
        == 201
    )
    again = client.post("/api/v1/judgments", json={"comparison_id": held, "choice": "left"}, headers=annotator_token)
    assert again.status_code == 409 and "You already judged pair" in again.json()["detail"][0]["msg"]
    assert len(judgments(db)) == 1


def test_the_browser_session_needs_the_csrf_header(client, db):
    make_user(db, "alice")
    login(client, "alice")
    make_comparisons(db, 1)
    page = client.get("/annotate").text
    pair_id = int(page.split('data-comparison-id="')[1].split('"')[0])
    body = {"comparison_id": pair_id, "choice": "both_bad", "client_request_id": "c-1"}
    refused = client.post("/api/v1/judgments", json=body)
    assert refused.status_code == 403
    assert refused.json()["detail"][0]["msg"] == "Missing or invalid CSRF token (X-CSRF-Token header)."
    assert judgments(db) == []
    accepted = client.post("/api/v1/judgments", json=body, headers={"X-CSRF-Token": csrf_from(page)})
    assert accepted.status_code == 201 and accepted.json()["channel"] == "browser"
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Judgment)) == 1


def test_an_annotator_cannot_use_admin_routes(client, annotator_token):
    response = client.get("/api/v1/users", headers=annotator_token)
    assert response.status_code == 403
    assert response.json()["detail"][0]["msg"] == "Admin role required."
