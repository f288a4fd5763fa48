"""The prompts API: bulk import (JSON body or file upload), listing, deactivation, and bad input."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.prompts.models import Prompt

URL = "/api/v1/prompts"


def _count(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Prompt))


def _jsonl(*rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def test_json_import_deduplicates(client, db, admin_token):
    body = {
        "prompts": [
            {"prompt": "Say hi."},
            {"prompt": "  Say hi.  "},
            {"messages": [{"role": "user", "content": "Count."}], "tags": ["math"]},
        ],
        "source": "notebook",
    }
    first = client.post(URL, json=body, headers=admin_token)
    assert first.status_code == 200 and first.json() == {"created": 2, "duplicates": 1, "errors": []}
    again = client.post(URL, json=body, headers=admin_token)
    assert again.json() == {"created": 0, "duplicates": 3, "errors": []}
    assert _count(db) == 2


def test_json_import_is_all_or_nothing_naming_the_bad_item(client, db, admin_token):
    body = {"prompts": [{"prompt": "fine"}, {"messages": [{"role": "assistant", "content": "no user turn"}]}]}
    response = client.post(URL, json=body, headers=admin_token)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "prompts", 1]
    assert _count(db) == 0


def test_json_import_of_a_too_long_prompt_names_its_index(client, app, db, admin_token):
    app.state.settings.PROMPT_MAX_CHARS = 10
    response = client.post(
        URL, json={"prompts": [{"prompt": "short"}, {"prompt": "far too long here"}]}, headers=admin_token
    )
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "prompts", 1] and "at most 10" in error["msg"]
    assert _count(db) == 0


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        (b'{"prompts": [{"prompt": "x"}', ["body", 28]),  # malformed JSON: where it broke
        (b'{"prompts": []}', ["body", "prompts"]),
        (b'{"prompts": [{"prompt": "x"}], "sauce": "typo"}', ["body", "sauce"]),
    ],
)
def test_malformed_json_bodies_are_422(client, db, admin_token, payload, loc):
    response = client.post(URL, content=payload, headers={**admin_token, "Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == loc
    assert _count(db) == 0


def test_upload_imports_a_jsonl_file(client, db, admin_token):
    data = _jsonl({"prompt": "One?"}, {"messages": [{"role": "user", "content": "Two?"}]}, "", {"prompt": "One?"})
    response = client.post(f"{URL}/import", files={"file": ("batch.jsonl", data)}, headers=admin_token)
    assert response.status_code == 200 and response.json() == {"created": 2, "duplicates": 1, "errors": []}
    listed = client.get(URL, params={"source": "batch.jsonl"}, headers=admin_token).json()
    assert listed["total"] == 2


def test_upload_with_bad_lines_stores_nothing_unless_asked_to_skip(client, db, admin_token):
    data = _jsonl({"prompt": "Good."}, "{not json", {"prompt": ""}, {"prompt": "Also good."})
    refused = client.post(f"{URL}/import", files={"file": ("p.jsonl", data)}, headers=admin_token)
    assert refused.status_code == 422
    error = refused.json()["detail"][0]
    assert error["loc"] == ["file"] and "line 2" in error["msg"] and "line 3" in error["msg"]
    assert _count(db) == 0
    skipped = client.post(
        f"{URL}/import",
        params={"skip_bad_lines": "true"},
        files={"file": ("p.jsonl", data)},
        headers=admin_token,
    )
    assert skipped.status_code == 200
    assert skipped.json()["created"] == 2 and [e["line"] for e in skipped.json()["errors"]] == [2, 3]


def test_upload_csv(client, admin_token):
    data = b"prompt,tags\nWhat is 2+2?,math|easy\n"
    response = client.post(
        f"{URL}/import", params={"source": "sheet"}, files={"file": ("p.csv", data)}, headers=admin_token
    )
    assert response.json()["created"] == 1
    item = client.get(URL, params={"tag": "easy"}, headers=admin_token).json()["items"][0]
    assert (item["text"], item["tags"], item["source"]) == ("What is 2+2?", ["math", "easy"], "sheet")


def test_oversized_upload_is_413_stating_the_limit(client, app, db, admin_token):
    app.state.settings.UPLOAD_MAX_BYTES = 2048
    data = _jsonl(*({"prompt": f"prompt number {i}"} for i in range(200)))
    upload = client.post(f"{URL}/import", files={"file": ("big.jsonl", data)}, headers=admin_token)
    assert upload.status_code == 413
    assert upload.json()["detail"] == [
        {
            "loc": ["body"],
            "type": "too_large",
            "msg": (
                "The request body is larger than the limit of 2048 bytes (PREFLOOP_UPLOAD_MAX_BYTES); "
                "send less at once."
            ),
        }
    ]
    body = {"prompts": [{"prompt": f"prompt number {i}"} for i in range(200)]}
    assert client.post(URL, json=body, headers=admin_token).status_code == 413
    chunked = client.post(
        URL,
        content=iter([json.dumps(body).encode()[i : i + 500] for i in range(0, 6000, 500)]),
        headers={**admin_token, "Content-Type": "application/json"},
    )
    assert "content-length" not in chunked.request.headers and chunked.status_code == 413
    assert _count(db) == 0


def test_list_filters_and_pages(client, admin_token):
    prompts = [{"prompt": f"Question {i}", "tags": ["even"] if i % 2 == 0 else []} for i in range(5)]
    client.post(URL, json={"prompts": prompts}, headers=admin_token)
    page = client.get(URL, params={"limit": 2, "offset": 1}, headers=admin_token).json()
    assert page["total"] == 5 and [p["text"] for p in page["items"]] == ["Question 3", "Question 2"]
    assert client.get(URL, params={"tag": "even"}, headers=admin_token).json()["total"] == 3
    assert client.get(URL, params={"q": "stion 4"}, headers=admin_token).json()["total"] == 1
    unknown = client.get(URL, params={"tags": "even"}, headers=admin_token)
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["query", "tags"]
    assert client.get(URL, params={"limit": 1001}, headers=admin_token).status_code == 422


def test_deactivate_and_reactivate(client, admin_token):
    client.post(URL, json={"prompts": [{"prompt": "Retire me."}]}, headers=admin_token)
    prompt_id = client.get(URL, headers=admin_token).json()["items"][0]["id"]
    deactivated = client.post(f"{URL}/{prompt_id}/deactivate", headers=admin_token)
    assert deactivated.status_code == 200 and deactivated.json()["is_active"] is False
    assert client.get(URL, params={"active": "true"}, headers=admin_token).json()["total"] == 0
    assert client.post(f"{URL}/{prompt_id}/reactivate", headers=admin_token).json()["is_active"] is True
    missing = client.post(f"{URL}/999/deactivate", headers=admin_token)
    assert missing.status_code == 404 and missing.json()["detail"][0]["loc"] == ["path", "prompt_id"]


def test_annotators_cannot_import(client, annotator_token):
    assert client.post(URL, json={"prompts": [{"prompt": "x"}]}, headers=annotator_token).status_code == 403
