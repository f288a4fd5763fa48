"""GET /api/v1/judgments: the raw judgment log, cursor-paginated, filtered, with precise errors."""

from __future__ import annotations

import base64

import pytest

from app.comparisons.models import Comparison
from app.export.service import encode_cursor, pseudonym

URL = "/api/v1/judgments"


def _all_pages(client, headers, **params) -> tuple[list[dict], int]:
    items, pages, cursor = [], 0, None
    while True:
        body = client.get(URL, params={**params, **({"cursor": cursor} if cursor else {})}, headers=headers)
        assert body.status_code == 200, body.text
        page = body.json()
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages


def test_pages_cover_every_judgment_once_in_id_order(client, world, admin_token):
    items, pages = _all_pages(client, admin_token, limit=3)
    assert [i["id"] for i in items] == world.judgments
    assert pages == 3  # 3 + 3 + 2


def test_item_carries_every_field_a_client_needs(client, world, admin_token, settings):
    first = client.get(URL, params={"limit": 1}, headers=admin_token).json()["items"][0]
    assert first == {
        "id": world.judgments[0],
        "comparison_id": world.comparisons["c1"],
        "prompt": {"id": first["prompt"]["id"], "messages": [{"role": "user", "content": "Name a colour."}]},
        "completion_a": {
            "id": first["completion_a"]["id"],
            "text": "Blue.",
            "policy_version": 1,
            "token_count": 1,
            "finish_reason": "eos",
        },
        "completion_b": {
            "id": first["completion_b"]["id"],
            "text": "Green.",
            "policy_version": 2,
            "token_count": 1,
            "finish_reason": "length",
        },
        "choice": "a",
        "strength": 3,
        "rationale": "clearer",
        "shown_left": "b",
        "annotator": pseudonym(secret=settings.secret_key, user_id=world.users["alice"]),
        "time_spent_ms": 1500,
        "client_time_spent_ms": None,
        "channel": "api",
        "created_at": "2026-01-01T00:00:00Z",
        "round_id": world.rounds["r1"],
        "is_gold": False,
        "gold_choice": None,
    }


def test_annotator_ids_are_pseudonymous_and_stable(client, world, admin_token, settings):
    items, _ = _all_pages(client, admin_token, limit=1000)
    names = {i["annotator"] for i in items}
    assert len(names) == 3
    assert not names & {"alice", "bob", "carol", *map(str, world.users.values())}
    assert pseudonym(secret="another-secret", user_id=world.users["alice"]) not in names


def test_rounds_are_assigned_by_snapshot_bounds(client, world, admin_token):
    items, _ = _all_pages(client, admin_token)
    assert [i["round_id"] for i in items] == [world.rounds["r1"]] * 3 + [world.rounds["r2"]] * 3 + [None] * 2


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"since": "2026-01-01T02:00:00Z", "until": "2026-01-01T05:00:00Z"}, [2, 3, 4]),
        ({"since": "2026-01-01T03:00:00+01:00"}, [2, 3, 4, 5, 6, 7]),  # 02:00 UTC
        ({"until": "2026-01-01T01:00:00"}, [0]),  # no offset: UTC
        ({"choice": ["tie", "both_bad"]}, [4, 5]),
        ({"gold": "true"}, [5]),
        ({"gold": "false", "choice": "a"}, [0, 1, 6]),
        ({"policy_version": 3}, [4, 5, 6, 7]),
        ({"policy_version": 1, "choice": "b"}, [2, 3, 7]),
    ],
)
def test_filters(client, world, admin_token, params, expected):
    items, _ = _all_pages(client, admin_token, **params)
    assert [i["id"] for i in items] == [world.judgments[k] for k in expected]


def test_round_and_annotator_filters(client, world, admin_token, settings):
    in_r2, _ = _all_pages(client, admin_token, round=world.rounds["r2"])
    assert [i["id"] for i in in_r2] == world.judgments[3:6]
    bob = pseudonym(secret=settings.secret_key, user_id=world.users["bob"])
    by_bob, _ = _all_pages(client, admin_token, annotator=bob)
    assert [i["id"] for i in by_bob] == [world.judgments[k] for k in (1, 5, 6)]


def test_prompt_filter(client, db, world, admin_token):
    with db.session() as session:
        prompt_id = session.get(Comparison, world.comparisons["c1"]).prompt_id
    items, _ = _all_pages(client, admin_token, prompt=prompt_id)
    assert [i["id"] for i in items] == [world.judgments[k] for k in (0, 1, 3)]
    assert {i["prompt"]["id"] for i in items} == {prompt_id}


def _error(response) -> dict:
    body = response.json()
    assert len(body["detail"]) == 1, body
    return body["detail"][0]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "",
        "bm90LWEtY3Vyc29y",  # base64 of "not-a-cursor"
        base64.urlsafe_b64encode(b"5.0000000000000000").decode(),  # right shape, forged signature
    ],
)
def test_invalid_cursor_is_422_naming_cursor(client, world, admin_token, cursor):
    response = client.get(URL, params={"cursor": cursor}, headers=admin_token)
    assert response.status_code == 422
    assert _error(response)["loc"] == ["query", "cursor"]


def test_cursor_signed_with_another_secret_is_refused(client, world, admin_token):
    forged = encode_cursor(secret="not-the-server-secret", last_id=world.judgments[2])
    response = client.get(URL, params={"cursor": forged}, headers=admin_token)
    assert response.status_code == 422 and _error(response)["loc"] == ["query", "cursor"]


@pytest.mark.parametrize("limit", ["0", "1001", "-5", "ten"])
def test_limit_out_of_range_is_422_naming_limit(client, admin_token, limit):
    response = client.get(URL, params={"limit": limit}, headers=admin_token)
    assert response.status_code == 422 and _error(response)["loc"] == ["query", "limit"]


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"rond": "1"}, "rond", "Extra inputs are not permitted"),
        ({"choice": "left"}, "choice", "Input should be"),
        ({"round": "999"}, "round", "Round 999 does not exist."),
        ({"policy_version": "42"}, "policy_version", "Policy version 42 does not exist."),
        ({"prompt": "4242"}, "prompt", "Prompt 4242 does not exist."),
        ({"prompt": "0"}, "prompt", "Input should be greater than or equal to 1"),
        ({"annotator": "ann_0000"}, "annotator", "No annotator has the id 'ann_0000'."),
        ({"since": "yesterday"}, "since", "Input should be a valid datetime"),
        (
            {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            "until",
            "'until' must be later",
        ),
    ],
)
def test_bad_filters_are_422_naming_the_field(client, world, admin_token, params, field, message):
    response = client.get(URL, params=params, headers=admin_token)
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"][:2] == ["query", field] and error["msg"].startswith(message), error


def test_round_without_snapshot_is_422(client, world, admin_token):
    response = client.get(URL, params={"round": world.rounds["r3"]}, headers=admin_token)
    assert response.status_code == 422
    assert _error(response) == {
        "loc": ["query", "round"],
        "msg": f"Round {world.rounds['r3']} has no snapshot yet.",
        "type": "invalid",
    }


def test_annotators_cannot_read_the_log(client, annotator_token):
    assert client.get(URL, headers=annotator_token).status_code == 403
    assert client.get("/api/v1/export", headers=annotator_token).status_code == 403
