"""The queue over HTTP: GET /api/v1/queue/next, skip, release, and the /annotate page."""

from __future__ import annotations

from sqlalchemy import func, select

from app.admin import service as admin_service
from app.auth.models import ApiToken, User
from app.queue.models import QueueLock, Skip
from tests.factories import make_comparison, make_comparisons, make_prompt, make_token, make_user
from tests.helpers import csrf_from, login


def count(db, model):
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_next_returns_a_blind_pair_reserved_for_you(client, db, annotator_token):
    pair_id = make_comparison(db, prompt_id=make_prompt(db, text="Name a colour."))
    response = client.get("/api/v1/queue/next", headers=annotator_token)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"comparison_id", "messages", "left", "right", "expires_at"}
    assert body["comparison_id"] == pair_id
    assert body["messages"] == [{"role": "user", "content": "Name a colour."}]
    assert {body["left"][-1], body["right"][-1]} == {"a", "b"}
    assert client.get("/api/v1/queue/next", headers=annotator_token).json() == body


def test_polling_the_queue_records_the_token_use(client, db):
    """The annotation routes run api_user in their own write unit of work (app/api/annotator_work.py):
    the token's last use is written there, not left for a read request's after-work that never runs."""
    make_user(db, "poller")
    headers = {"Authorization": f"Bearer {make_token(db, 'poller')}"}
    assert client.get("/api/v1/queue/next", headers=headers).status_code == 204
    with db.session() as session:
        token = session.scalars(select(ApiToken).join(User).where(User.username == "poller")).one()
        assert token.last_used_at is not None


def test_next_on_an_empty_pool_is_204_with_retry_after(client, annotator_token, settings):
    response = client.get("/api/v1/queue/next", headers=annotator_token)
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["retry-after"] == str(settings.QUEUE_EMPTY_RETRY_S)


def test_next_needs_authentication(client):
    response = client.get("/api/v1/queue/next")
    assert response.status_code == 401
    assert "Authentication required" in response.json()["detail"][0]["msg"]


def test_next_with_a_malformed_after_is_422(client, annotator_token):
    for bad in ("0", "abc", str(2**40)):
        response = client.get(f"/api/v1/queue/next?after={bad}", headers=annotator_token)
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["loc"] == ["query", "after"]


def test_prefetch_with_after_returns_the_pair_behind(client, db, annotator_token):
    first, second = make_comparisons(db, 2)
    assert client.get("/api/v1/queue/next", headers=annotator_token).json()["comparison_id"] == first
    behind = client.get(f"/api/v1/queue/next?after={first}", headers=annotator_token)
    assert behind.json()["comparison_id"] == second


def test_skip_and_release_over_the_api(client, db, annotator_token):
    first, second = make_comparisons(db, 2)
    client.get("/api/v1/queue/next", headers=annotator_token)
    skipped = client.post(f"/api/v1/queue/{first}/skip", json={"reason": "Prompt is unclear"}, headers=annotator_token)
    assert skipped.status_code == 201
    assert skipped.json()["reason"] == "Prompt is unclear"
    again = client.post(f"/api/v1/queue/{first}/skip", json={"reason": "other"}, headers=annotator_token)
    assert (again.status_code, again.json()["reason"]) == (200, "Prompt is unclear")
    assert client.get("/api/v1/queue/next", headers=annotator_token).json()["comparison_id"] == second
    assert client.post(f"/api/v1/queue/{second}/release", headers=annotator_token).status_code == 204
    assert count(db, QueueLock) == 0
    assert client.post(f"/api/v1/queue/{second}/release", headers=annotator_token).status_code == 204


def test_skip_refusals_are_clear_and_store_nothing(client, db, annotator_token):
    [pair_id] = make_comparisons(db, 1)
    not_reserved = client.post(f"/api/v1/queue/{pair_id}/skip", json={"reason": "x"}, headers=annotator_token)
    assert not_reserved.status_code == 409
    assert "not reserved for you" in not_reserved.json()["detail"][0]["msg"]
    client.get("/api/v1/queue/next", headers=annotator_token)
    no_reason = client.post(f"/api/v1/queue/{pair_id}/skip", json={}, headers=annotator_token)
    assert no_reason.status_code == 422
    assert no_reason.json()["detail"][0]["loc"] == ["body", "reason"]
    too_long = client.post(f"/api/v1/queue/{pair_id}/skip", json={"reason": "x" * 501}, headers=annotator_token)
    assert too_long.status_code == 422
    missing = client.post("/api/v1/queue/99999/skip", json={"reason": "x"}, headers=annotator_token)
    assert missing.status_code == 404
    assert missing.json()["detail"][0]["loc"] == ["path", "comparison_id"]  # the id came in the path
    assert count(db, Skip) == 0


def test_browser_skip_needs_the_csrf_header(client, db):
    make_user(db, "alice")
    login(client, "alice")
    [pair_id] = make_comparisons(db, 1)
    csrf = csrf_from(client.get("/annotate").text)
    refused = client.post(f"/api/v1/queue/{pair_id}/skip", json={"reason": "x"})
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"][0]["msg"]
    assert count(db, Skip) == 0
    accepted = client.post(f"/api/v1/queue/{pair_id}/skip", json={"reason": "x"}, headers={"X-CSRF-Token": csrf})
    assert accepted.status_code == 201


def test_annotate_page_needs_a_signed_in_user(client):
    response = client.get("/annotate", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/annotate"


def test_annotate_page_renders_model_text_and_prompts_inert(client, db):
    make_user(db, "alice")
    login(client, "alice")
    make_comparison(
        db,
        prompt_id=make_prompt(db, text="<script>alert('prompt')</script> and `code`"),
        text_a="<img src=x onerror=alert(1)>\n\n```python\nprint('<b>hi</b>')\n```",
        text_b="- one\n- two <iframe src=//evil>\n\n[click](javascript:alert(1))",
    )
    page = client.get("/annotate").text
    assert "<script>alert" not in page and "&lt;script&gt;alert('prompt')&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<iframe" not in page and "&lt;iframe src=//evil&gt;" in page
    assert 'href="javascript' not in page and "[click](javascript:alert(1))" in page
    assert """<code class="language-python">print('&lt;b&gt;hi&lt;/b&gt;')""" in page
    assert "<li>one</li>" in page
    assert "<code>code</code>" in page


def test_annotate_page_shows_a_pair_counts_guidelines_and_a_legend(client, db):
    make_user(db, "alice")
    login(client, "alice")
    [pair_id] = make_comparisons(db, 1)
    with db.session() as session:
        admin_service.set_guidelines(db=session, markdown="# Be fair\n\nPrefer **correct** answers. <b>raw</b>")
    page = client.get("/annotate").text
    assert f'data-comparison-id="{pair_id}"' in page
    assert 'id="count-today">0<' in page and 'id="count-total">0<' in page
    assert "<strong>correct</strong>" in page and "&lt;b&gt;raw&lt;/b&gt;" in page
    for shortcut in ("A better", "B better", "tie", "both bad", "submit", "skip"):
        assert shortcut in page
    with db.session() as session:
        lock = session.scalar(select(QueueLock))
        assert (lock.comparison_id, lock.shown_at is not None) == (pair_id, True)


def test_annotate_page_says_when_the_pool_is_empty(client, db):
    make_user(db, "alice")
    login(client, "alice")
    page = client.get("/annotate").text
    assert "No pairs ready; generating more." in page
    fragment = client.get("/annotate/pair")
    assert fragment.status_code == 200 and 'class="pair-empty" data-retry-s="10"' in fragment.text


def test_pair_fragment_prefetches_the_pair_behind_the_one_on_screen(client, db):
    make_user(db, "alice")
    login(client, "alice")
    first, second = make_comparisons(db, 2)
    client.get("/annotate")
    fragment = client.get(f"/annotate/pair?after={first}").text
    assert f'data-comparison-id="{second}"' in fragment and "<html" not in fragment
