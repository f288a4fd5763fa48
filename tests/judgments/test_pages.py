"""The console's judgments browser (/admin/judgments): each filter, pagination, links to the comparison,
and bad filter values answered on the page with a message and a 422 (never a 500)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from app.auth.models import Role
from app.comparisons.models import Choice
from app.policies.models import PolicyStatus
from tests.factories import make_comparison, make_judgment, make_policy_version, make_prompt, make_user
from tests.helpers import login

HTML = {"accept": "text/html"}


@pytest.fixture
def admin(client, db) -> int:
    user_id = make_user(db, "boss", role=Role.admin)
    assert login(client, "boss").status_code == 303
    return user_id


@pytest.fixture
def judged(db, admin) -> dict[str, int]:
    """Four judgments: alice judges a pair of v1 (choice a) and a v1-vs-v2 pair (tie) on prompt P on
    Dec 1; bob judges the first pair (b) on Dec 2 and another prompt's pair (both bad) on Dec 3."""
    alice, bob = make_user(db, "alice"), make_user(db, "bob")
    with db.session() as session:
        v1 = make_policy_version(session, number=1)
        v2 = make_policy_version(session, number=2, status=PolicyStatus.candidate)
        prompt = make_prompt(session, text="What is the capital of France?")
        other = make_prompt(session, text="Write a haiku about rain.")
        first = make_comparison(session, prompt_id=prompt, version_a_id=v1, overlap_target=2)
        mixed = make_comparison(session, prompt_id=prompt, version_a_id=v1, version_b_id=v2)
        third = make_comparison(session, prompt_id=other, version_a_id=v1)
    ids = {
        "alice_a": make_judgment(
            db,
            comparison_id=first,
            annotator_id=alice,
            choice=Choice.a,
            created_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
        ),
        "alice_tie": make_judgment(
            db,
            comparison_id=mixed,
            annotator_id=alice,
            choice=Choice.tie,
            created_at=datetime(2026, 12, 1, 23, tzinfo=UTC),
        ),
        "bob_b": make_judgment(
            db, comparison_id=first, annotator_id=bob, choice=Choice.b, created_at=datetime(2026, 12, 2, 12, tzinfo=UTC)
        ),
        "bob_both_bad": make_judgment(
            db,
            comparison_id=third,
            annotator_id=bob,
            choice=Choice.both_bad,
            created_at=datetime(2026, 12, 3, 8, tzinfo=UTC),
        ),
    }
    return {**ids, "prompt": prompt, "first": first, "mixed": mixed, "third": third}


def listed(html: str) -> list[int]:
    """The judgment ids in the table, in page order."""
    table = html.split('id="judgment-table"', 1)[1].split("</table>", 1)[0]
    return [int(n) for n in re.findall(r'<tr>\s*<td class="num">(\d+)</td>', table)]


def test_lists_every_judgment_newest_first_with_links_to_its_comparison(client, judged):
    response = client.get("/admin/judgments", headers=HTML)
    assert response.status_code == 200
    assert listed(response.text) == [judged["bob_both_bad"], judged["bob_b"], judged["alice_tie"], judged["alice_a"]]
    assert f'href="/admin/comparisons/{judged["mixed"]}"' in response.text
    assert "v1 · v2" in response.text  # the versions that produced the pair
    assert "4 judgments match (2 decisive · 1 tie · 1 both bad)" in response.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("annotator=alice", ["alice_tie", "alice_a"]),
        ("choice=b", ["bob_b"]),
        ("version=2", ["alice_tie"]),
        ("since=2026-12-02", ["bob_both_bad", "bob_b"]),
        ("until=2026-12-01", ["alice_tie", "alice_a"]),  # the whole day, 23:00 included
        ("since=2026-12-02&until=2026-12-02", ["bob_b"]),
        ("annotator=bob&choice=both_bad", ["bob_both_bad"]),
    ],
)
def test_each_filter_narrows_the_list(client, judged, query, expected):
    response = client.get(f"/admin/judgments?{query}", headers=HTML)
    assert response.status_code == 200
    assert listed(response.text) == [judged[name] for name in expected]


def test_prompt_filter_keeps_that_prompts_pairs(client, judged):
    response = client.get(f"/admin/judgments?prompt={judged['prompt']}", headers=HTML)
    assert listed(response.text) == [judged["bob_b"], judged["alice_tie"], judged["alice_a"]]


def test_empty_fields_are_no_filter(client, judged):
    response = client.get("/admin/judgments?annotator=&prompt=&version=&choice=&since=&until=", headers=HTML)
    assert response.status_code == 200
    assert len(listed(response.text)) == 4


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("prompt=abc", "Prompt id: Input should be a valid integer"),
        ("prompt=0", "Prompt id: Input should be greater than or equal to 1"),
        ("choice=maybe", "Choice: Input should be 'a', 'b', 'tie' or 'both_bad'"),
        ("since=yesterday", "From: Input should be a valid date"),
        ("until=9999-12-31", "To: Input should be less than 9999-12-31"),
        ("prompt=999", "Prompt 999 does not exist."),
        ("version=7", "Policy version 7 does not exist."),
        ("annotator=nobody", "No annotator is named 'nobody'."),
        ("since=2026-12-03&until=2026-12-01", "'until' must be later than 'since'."),
        ("cursor=forged", "Invalid cursor"),
    ],
)
def test_bad_filter_values_are_a_message_on_the_page(client, judged, query, message):
    response = client.get(f"/admin/judgments?{query}", headers=HTML)
    assert response.status_code == 422
    assert 'class="alert error" role="alert"' in response.text
    assert message in response.text.replace("&#39;", "'")
    assert listed(response.text) == []


def test_pages_follow_the_cursor_and_keep_the_filters(client, db, judged, settings):
    settings.ADMIN_PAGE_SIZE = 1
    first = client.get("/admin/judgments?annotator=alice", headers=HTML)
    assert listed(first.text) == [judged["alice_tie"]]
    older = re.search(r'<a href="([^"]+)">Older →</a>', first.text).group(1).replace("&amp;", "&")
    assert "annotator=alice" in older
    second = client.get(f"/admin/judgments{older}", headers=HTML)
    assert listed(second.text) == [judged["alice_a"]]
    assert "Older →" not in second.text
    assert "← Newest" in second.text


def _form_values(html: str) -> dict[str, str]:
    """What the filter form shows: each input's value and each select's selected option."""
    form = html.split('id="judgment-filters"', 1)[1].split("</form>", 1)[0]
    values = dict(re.findall(r'<input[^>]*name="(\w+)" value="([^"]*)"', form))
    for name, options in re.findall(r'<select name="(\w+)">(.*?)</select>', form, re.S):
        selected = re.search(r'<option value="([^"]*)" selected>', options)
        values[name] = selected.group(1) if selected else ""
    return values


@pytest.mark.parametrize(
    ("bad", "message", "shown"),
    [
        ({"prompt": "12a"}, "Prompt id: Input should be a valid integer", {"prompt": "12a"}),
        ({"until": "2026-12-32"}, "To: Input should be a valid date", {"until": "2026-12-32"}),
        ({"version": "two"}, "Policy version: Input should be a valid integer", {"version": ""}),
        ({"choice": "maybe", "prompt": "0"}, "Choice: Input should be", {"choice": "", "prompt": "0"}),
    ],
)
def test_a_bad_filter_keeps_the_other_values_in_the_form(client, judged, bad, message, shown):
    good = {"annotator": "alice", "prompt": str(judged["prompt"]), "version": "1", "choice": "tie"}
    good |= {"since": "2026-12-01", "until": "2026-12-02"}
    response = client.get("/admin/judgments", params=good | bad, headers=HTML)
    assert response.status_code == 422
    assert message in response.text.replace("&#39;", "'")
    assert listed(response.text) == []
    # the fields that were fine as they were typed, the bad ones as typed where the field can show it
    assert _form_values(response.text) == good | shown
