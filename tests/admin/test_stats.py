"""The console's numbers from a small dataset worked out by hand, on SQLite and PostgreSQL: the
service, and /api/v1/stats returning the same."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.auth.models import Role, User
from app.comparisons.models import Choice
from app.core.db import utcnow
from app.queue.models import Skip
from app.stats import service
from app.training import service as training_service
from tests.factories import make_comparisons, make_judgment, make_user

NOW = utcnow().replace(hour=12, minute=30, second=0, microsecond=0)


def ago(**delta) -> datetime:
    return NOW - timedelta(**delta)


@pytest.fixture
def dataset(db) -> dict[str, int]:
    """Three annotators judge five pairs (g1 is gold, expected a); u4 has judged nothing.

    c1: u1 a (left a)  u2 a (left b)             c3: u1 tie  u2 tie  u3 tie
    c2: u1 b (left b)  u2 a (left a)             c4: u3 both_bad (left b); u2 skipped it
    g1: u1 a (left a)  u3 b (left a)
    """
    ids = {name: make_user(db, name) for name in ("u1", "u2", "u3", "u4")}
    ids["boss"] = make_user(db, "boss", role=Role.admin)
    c1, c2, c3, c4 = make_comparisons(db, 4, overlap_target=2)
    (g1,) = make_comparisons(db, 1, overlap_target=2, is_gold=True, gold_choice=Choice.a)
    u1, u2, u3 = ids["u1"], ids["u2"], ids["u3"]
    plan = [  # pair, annotator, choice, shown left, time spent (ms), when
        (c1, u1, "a", "a", 1000, ago(minutes=10)),
        (c2, u1, "b", "b", 3000, ago(minutes=50)),
        (c3, u1, "tie", "a", 2000, ago(hours=2, minutes=10)),
        (g1, u1, "a", "a", 4000, ago(hours=3)),
        (c1, u2, "a", "b", 5000, ago(minutes=20)),
        (c2, u2, "a", "a", 5000, ago(hours=26)),
        (c3, u2, "tie", "b", None, ago(hours=5)),
        (c3, u3, "tie", "a", 700, ago(hours=30)),
        (c4, u3, "both_bad", "b", 900, ago(hours=40)),
        (g1, u3, "b", "a", 800, ago(hours=48)),
    ]
    for comparison_id, annotator_id, choice, shown_left, time_spent_ms, created_at in plan:
        make_judgment(
            db,
            comparison_id=comparison_id,
            annotator_id=annotator_id,
            choice=choice,
            shown_left=shown_left,
            time_spent_ms=time_spent_ms,
            created_at=created_at,
        )
    with db.session() as session:
        session.add(Skip(comparison_id=c4, annotator_id=u2, reason="unreadable"))
    return ids


def test_progress_counts_the_pool_and_the_pace(db, dataset):
    with db.session() as session:
        progress = service.progress(db=session, now=NOW)
    assert (progress.prompts_total, progress.prompts_active) == (5, 5)
    pool = (progress.comparisons_ready, progress.comparisons_completed, progress.comparisons_gold)
    assert pool == (1, 4, 1)
    assert progress.judgments_total == 10
    assert progress.judgments_today == 6  # since 00:00: u1's four, u2's at -20 min and -5 h
    assert progress.judgments_last_hour == 3
    assert progress.annotators_active == 2  # u3 judged nothing in the last 24 h
    hourly = [h.judgments for h in progress.judgments_per_hour]
    assert len(hourly) == 24 and progress.judgments_per_hour[-1].start == NOW.replace(minute=0)
    assert hourly == [0] * 18 + [1, 0, 1, 1, 1, 2]  # -26 h is outside the window
    assert progress.active_policy.number == 1  # version 1, which the factories record active
    assert progress.current_round is None


def test_annotator_stats_match_the_hand_computed_values(db, dataset):
    with db.session() as session:
        rows = {row.username: row for row in service.annotator_stats(db=session, now=NOW)}
    assert set(rows) == {"u1", "u2", "u3", "u4"}  # annotators, and admins only once they judge
    u1, u2, u3, u4 = rows["u1"], rows["u2"], rows["u3"], rows["u4"]

    assert (u1.judgments, u1.judgments_today, u1.skips) == (4, 4, 0)
    assert (u1.tie_rate, u1.both_bad_rate, u1.skip_rate) == (0.25, 0.0, 0.0)
    assert u1.median_time_ms == 2500
    # Every side-picking judgment of u1 went left: 3 of 3, two-sided exact p = 2 / 2^3.
    assert (u1.position_bias.left, u1.position_bias.decided, u1.position_bias.share) == (3, 3, 1.0)
    assert u1.position_bias.p_value == pytest.approx(0.25)
    assert (u1.gold_judged, u1.gold_correct, u1.gold_accuracy) == (1, 1, 1.0)
    # u1 against the others on shared pairs: (a,a) (b,a) (tie,tie) (tie,tie) (a,b) -> 3 of 5 agree;
    # p_e = (2*2 + 1*1 + 2*2) / 25, kappa = (15 - 9) / (25 - 9) = 0.375.
    assert (u1.overlap_pairs, u1.agreement_rate) == (5, 0.6)
    assert u1.kappa_vs_others == pytest.approx(0.375)

    assert (u2.judgments, u2.skips, u2.skip_rate) == (3, 1, 0.25)
    assert u2.judgments_today == 2 and u2.median_time_ms == 5000  # the untimed judgment is left out
    assert (u2.position_bias.left, u2.position_bias.decided) == (1, 2)
    assert (u2.gold_judged, u2.gold_accuracy) == (0, None)

    assert (u3.tie_rate, u3.both_bad_rate) == (pytest.approx(1 / 3), pytest.approx(1 / 3))
    assert u3.median_time_ms == 800
    assert (u3.position_bias.left, u3.position_bias.decided) == (0, 1)
    assert (u3.gold_judged, u3.gold_correct, u3.gold_accuracy) == (1, 0, 0.0)

    assert (u4.judgments, u4.skips, u4.median_time_ms, u4.tie_rate, u4.skip_rate) == (0, 0, None, None, None)
    assert (u4.position_bias.share, u4.kappa_vs_others, u4.last_judgment_at) == (None, None, None)


def test_agreement_matches_the_hand_computed_values(db, dataset):
    with db.session() as session:
        agreement = service.agreement(db=session)
    # Shared: c1 [a,a], c2 [b,a], c3 [tie,tie,tie], g1 [a,b]. Coincidences o_aa=2, o_ab=o_ba=2, o_tt=3;
    # n_a=4, n_b=2, n_tie=3, n=9; alpha = 1 - 4 / ((81 - 29) / 8) = 5/13.
    assert agreement.alpha == pytest.approx(5 / 13)
    assert agreement.alpha_reading == "unreliable"
    assert (agreement.units, agreement.judgments) == (4, 9)
    pairs = {(p.annotator_a.username, p.annotator_b.username): p for p in agreement.pairs}
    assert list(pairs) == [("u1", "u2"), ("u1", "u3"), ("u2", "u3")]  # most shared first
    # u1/u2 on c1, c2, c3: p_o = 2/3, p_e = 1/3, kappa = 0.5. u1/u3 on c3, g1: p_o = 1/2, p_e = 1/4.
    assert (pairs["u1", "u2"].shared, pairs["u1", "u2"].agreed) == (3, 2)
    assert pairs["u1", "u2"].kappa == pytest.approx(0.5)
    assert pairs["u1", "u3"].kappa == pytest.approx(1 / 3)
    # u2/u3 share only c3, where both said tie: agreement is forced, kappa undefined.
    assert (pairs["u2", "u3"].agreement_rate, pairs["u2", "u3"].kappa) == (1.0, None)


def test_stats_without_any_judgment_are_zero_or_undefined(db):
    make_user(db, "lonely")
    with db.session() as session:
        agreement = service.agreement(db=session)
        (row,) = service.annotator_stats(db=session)
        progress = service.progress(db=session)
    assert (agreement.alpha, agreement.alpha_reading, agreement.units) == (None, "undefined", 0)
    assert agreement.pairs == []
    assert (row.judgments, row.gold_accuracy, row.kappa_vs_others) == (0, None, None)
    assert (progress.judgments_total, progress.active_policy, progress.current_round) == (0, None, None)
    assert sum(h.judgments for h in progress.judgments_per_hour) == 0


def test_progress_shows_the_round_in_flight(db, settings, dataset):
    with db.session() as session:
        boss = session.get(User, dataset["boss"])
        training_service.launch(db=session, settings=settings, requested_by=boss, config_overrides={})
    with db.session() as session:
        current = service.progress(db=session).current_round
    assert (current.status, current.stage, current.fraction) == ("queued", "", None)
    assert current.started_at is None
    assert current.completed_stages == []


def test_stats_api_returns_the_service_numbers_to_admins_only(client, dataset, admin_token, annotator_token):
    for path in ("/api/v1/stats/progress", "/api/v1/stats/annotators", "/api/v1/stats/agreement"):
        assert client.get(path).status_code == 401
        forbidden = client.get(path, headers=annotator_token)
        assert forbidden.status_code == 403 and forbidden.json()["detail"][0]["msg"] == "Admin role required."
    agreement = client.get("/api/v1/stats/agreement", headers=admin_token).json()
    assert agreement["alpha"] == pytest.approx(5 / 13) and agreement["units"] == 4
    rows = client.get("/api/v1/stats/annotators", headers=admin_token).json()
    annotators = {a["username"]: a for a in rows}
    assert annotators["u1"]["kappa_vs_others"] == pytest.approx(0.375)
    assert annotators["u1"]["position_bias"]["p_value"] == pytest.approx(0.25)
    assert annotators["u2"]["skip_rate"] == 0.25
    assert annotators["u1"]["last_judgment_at"].endswith(("Z", "+00:00"))  # UTC, on SQLite too
    progress = client.get("/api/v1/stats/progress", headers=admin_token).json()
    assert progress["judgments_total"] == 10 and progress["comparisons_gold"] == 1
    assert len(progress["judgments_per_hour"]) == 24
