"""The leaderboard API on real rows: versions judged against each other by annotators."""

from __future__ import annotations

from app.comparisons.models import Choice
from app.policies.models import PolicyStatus
from tests.factories import make_judged_pair, make_policy_version, make_user


def _battle_rows(db, outcomes: list[Choice]) -> None:
    """Version 2 (child of 1) is completion a in every pair; one annotator per judgment."""
    annotators = [make_user(db, f"judge{i}") for i in range(len(outcomes))]
    v1 = make_policy_version(db, number=1, status=PolicyStatus.archived)
    v2 = make_policy_version(db, number=2, parent_id=v1)
    for choice, annotator in zip(outcomes, annotators, strict=True):
        make_judged_pair(db, annotator_id=annotator, choice=choice, version_a_id=v2, version_b_id=v1)


def test_leaderboard_ranks_the_preferred_version_first_with_intervals(client, db, admin_token):
    _battle_rows(db, [Choice.a] * 12 + [Choice.b] * 3 + [Choice.tie, Choice.both_bad])
    response = client.get("/api/v1/leaderboard?bootstrap_rounds=50", headers=admin_token)
    assert response.status_code == 200
    first, second = response.json()
    assert (first["number"], second["number"]) == (2, 1)
    assert abs(second["rating"] - 1000.0) < 1e-6  # the base is the anchor
    assert first["rating_low"] <= first["rating"] <= first["rating_high"]
    assert first["vs_parent"] == first["vs_base"]
    assert (first["vs_parent"]["wins"], first["vs_parent"]["losses"], first["vs_parent"]["ties"]) == (12, 3, 2)
    assert first["vs_parent"]["win_rate"] == 0.8
    assert second["vs_parent"] is None and second["vs_base"] is None
    assert first["battles"] == second["battles"] == 17


def test_leaderboard_ignores_excluded_annotators_and_is_admin_only(client, db, admin_token, annotator_token):
    _battle_rows(db, [Choice.a, Choice.b])
    from app.auth.models import User

    with db.session() as s:
        s.query(User).filter(User.username == "judge0").one().excluded_from_training = True
    rows = client.get("/api/v1/leaderboard", headers=admin_token).json()
    assert rows[0]["battles"] == 1
    assert client.get("/api/v1/leaderboard", headers=annotator_token).status_code == 403
    assert client.get("/api/v1/leaderboard?bootstrap_rounds=5", headers=admin_token).status_code == 422


def test_empty_leaderboard(client, admin_token):
    assert client.get("/api/v1/leaderboard", headers=admin_token).json() == []
