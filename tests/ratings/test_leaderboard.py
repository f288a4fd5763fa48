"""The leaderboard API and the console's policies page on real rows: versions judged against each
other by annotators."""

from __future__ import annotations

import json
import re

from app.auth.models import Role
from app.comparisons.models import Choice
from app.policies.models import PolicyStatus
from app.ratings.service import MIN_BATTLES
from tests.factories import make_judged_pair, make_policy_version, make_user
from tests.helpers import login


def _battle_rows(db, outcomes: list[Choice], *, number: int = 2, parent: int | None = None) -> int:
    """Version `number` (child of `parent`, or of a new base v1) is completion a in every pair; one
    annotator per judgment. Returns the new version's id."""
    if parent is None:
        parent = make_policy_version(db, number=1, status=PolicyStatus.archived)
    child = make_policy_version(db, number=number, parent_id=parent)
    for i, choice in enumerate(outcomes):
        annotator = make_user(db, f"judge{number}_{i}")
        make_judged_pair(db, annotator_id=annotator, choice=choice, version_a_id=child, version_b_id=parent)
    return child


def test_leaderboard_ranks_the_preferred_version_first_with_intervals(client, db, admin_token):
    _battle_rows(db, [Choice.a] * 12 + [Choice.b] * 3 + [Choice.tie, Choice.both_bad])
    response = client.get("/api/v1/leaderboard", headers=admin_token)
    assert response.status_code == 200
    first, second = response.json()
    assert (first["number"], second["number"]) == (2, 1)
    assert abs(second["rating"] - 1000.0) < 1e-6  # the base is the anchor
    assert first["rating_low"] < first["rating"] < first["rating_high"]
    assert first["vs_parent"] == first["vs_base"]
    assert (first["vs_parent"]["wins"], first["vs_parent"]["losses"], first["vs_parent"]["ties"]) == (12, 3, 2)
    assert first["vs_parent"]["win_rate"] == 0.8
    assert second["vs_parent"] is None and second["vs_base"] is None
    assert first["battles"] == second["battles"] == 17
    assert first["enough_battles"] and second["enough_battles"]


def test_one_battle_is_not_enough_to_rank_a_version(client, db, admin_token):
    v2 = _battle_rows(db, [Choice.a] * 12 + [Choice.b] * 3)
    _battle_rows(db, [Choice.a], number=3, parent=v2)
    rows = client.get("/api/v1/leaderboard", headers=admin_token).json()
    assert [(row["number"], row["enough_battles"]) for row in rows] == [(2, True), (1, True), (3, False)]
    thin = rows[2]
    assert thin["battles"] == 1
    assert abs(thin["rating"] - rows[0]["rating"]) < 100  # a modest step from its opponent, not hundreds
    assert thin["rating_high"] - thin["rating_low"] >= 200


def test_policies_page_lists_a_thin_version_apart_and_leaves_it_off_the_chart(client, db):
    make_user(db, "boss", role=Role.admin)
    assert login(client, "boss").status_code == 303
    v2 = _battle_rows(db, [Choice.a] * 12 + [Choice.b] * 3)
    _battle_rows(db, [Choice.a], number=3, parent=v2)
    page = client.get("/admin/policies").text
    rows = {int(n): row for n, row in re.findall(r"<strong>v(\d+)</strong>(.*?)</tr>", page, re.S)}
    assert "not enough comparisons" in rows[3] and f"1 of {MIN_BATTLES} battles" in rows[3]
    assert "not enough comparisons" not in rows[2] and "16 battles" in rows[2]  # 15 against v1, 1 against v3
    assert "reference · 15 battles" in rows[1]  # the base is fixed at 1000, not estimated
    chart = json.loads(re.search(r'<script type="application/json" id="rating-data">(.*?)</script>', page).group(1))
    assert [point["version"] for point in chart] == [1, 2]


def test_a_single_ranked_version_draws_no_chart(client, db):
    make_user(db, "boss", role=Role.admin)
    assert login(client, "boss").status_code == 303
    _battle_rows(db, [Choice.a, Choice.b])
    page = client.get("/admin/policies").text
    assert page.count("not enough comparisons") == 2
    assert 'id="rating-chart"' not in page


def test_leaderboard_ignores_excluded_annotators_and_is_admin_only(client, db, admin_token, annotator_token):
    _battle_rows(db, [Choice.a, Choice.b])
    from app.auth.models import User

    with db.session() as s:
        s.query(User).filter(User.username == "judge2_0").one().excluded_from_training = True
    rows = client.get("/api/v1/leaderboard", headers=admin_token).json()
    assert rows[0]["battles"] == 1
    assert client.get("/api/v1/leaderboard", headers=annotator_token).status_code == 403


def test_empty_leaderboard(client, admin_token):
    assert client.get("/api/v1/leaderboard", headers=admin_token).json() == []
