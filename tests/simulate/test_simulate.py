"""Scripted annotators judge through the real HTTP API; errors make them back off, not stop."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.auth.models import Role
from app.auth.schemas import USERNAME_PATTERN
from app.cli import cli
from app.comparisons.models import Choice
from app.judgments.models import Judgment
from app.simulate import preferences
from app.simulate.runner import AnnotatorSpec, annotator_names, decide, provision, simulate
from tests.browser.conftest import live_server  # noqa: F401  (fixture)
from tests.factories import make_comparisons, make_token, make_user

ROOT = Path(__file__).resolve().parents[2]


def prefers_good(_prompt: str, a: str, b: str) -> float:
    return float("good" in a) - float("good" in b)


def test_simulate_command_judges_through_the_api_with_the_left_right_mapping(live_server):  # noqa: F811 (the fixture imported above)
    make_comparisons(live_server.db, 12, text_a="a good answer", text_b="a poor answer")
    make_user(live_server.db, "boss", role=Role.admin)
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--url",
            live_server.url,
            "--admin-token",
            make_token(live_server.db, "boss"),
            "--annotators",
            "3",
            "--judgments",
            "10",
            "--noise",
            "0",
            "--preference",
            "tests.simulate.test_simulate:prefers_good",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "acknowledged 10 judgments" in result.output
    with live_server.db.session() as session:
        judgments = list(session.scalars(select(Judgment)))
    assert len(judgments) == 10
    assert {j.choice for j in judgments} == {Choice.a}  # preference read through the swap
    assert {j.shown_left for j in judgments} == {"a", "b"}  # both screen orders occurred
    assert len({j.annotator_id for j in judgments}) >= 2  # several accounts did the work
    assert {j.channel for j in judgments} == {"api"}


def test_stopping_midway_loses_no_acknowledged_judgment(live_server):  # noqa: F811 (the fixture imported above)
    make_comparisons(live_server.db, 60, text_a="a good answer", text_b="a poor answer")
    make_user(live_server.db, "boss", role=Role.admin)
    names = ["sim-0", "sim-1", "sim-2"]
    tokens = asyncio.run(provision(live_server.url, make_token(live_server.db, "boss"), names))
    specs = [AnnotatorSpec(name, prefers_good, think_s=0.1) for name in names]
    # asked for more than exists and stopped after a second: annotators are cut off mid-pair
    stats = asyncio.run(simulate(live_server.url, tokens, specs, judgments=60, timeout_s=1.0))
    with live_server.db.session() as session:
        stored = set(session.scalars(select(Judgment.client_request_id)))
    assert 0 < stats.acknowledged < 60
    assert set(stats.acknowledged_request_ids) <= stored
    assert len(stored) <= stats.acknowledged + len(names)  # at most the submits in flight at the stop


def test_unknown_preference_is_a_clear_error():
    result = CliRunner().invoke(cli, ["simulate", "--admin-token", "x", "--preference", "nonsense"])
    assert result.exit_code == 2 and "unknown preference 'nonsense'" in result.output


def test_shipped_preferences_load_by_name():
    assert preferences.load("on_topic")("Tell me about cats.", "Cats are great pets.", "Dogs bark.") > 0


def test_annotator_backs_off_on_429_409_401_and_carries_on():
    calls = {"next": 0, "submit": 0}
    stored: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/queue/next":
            calls["next"] += 1
            if calls["next"] == 1:
                return httpx.Response(429, headers={"Retry-After": "0"})
            if calls["next"] == 2:
                return httpx.Response(401)
            pair_id = calls["next"]
            return httpx.Response(
                200,
                json={
                    "comparison_id": pair_id,
                    "messages": [{"role": "user", "content": "q"}],
                    "left": "good",
                    "right": "bad",
                    "expires_at": "2030-01-01T00:00:00Z",
                },
            )
        calls["submit"] += 1
        if calls["submit"] == 1:
            return httpx.Response(409, json={"detail": [{"msg": "lock expired"}]})
        stored.append(json.loads(request.content))
        return httpx.Response(201, json={})

    spec = AnnotatorSpec("sim", prefers_good)
    stats = asyncio.run(
        simulate("http://test", {"sim": "t"}, [spec], judgments=3, transport=httpx.MockTransport(handler))
    )
    assert stats.acknowledged == 3 and len(stored) == 3
    assert stats.backoffs[429] == 1 and stats.backoffs[401] == 1 and stats.backoffs[409] == 1
    assert all(body["choice"] == "left" for body in stored)
    assert len({body["client_request_id"] for body in stored}) == 3


def test_annotator_names_are_valid_usernames_for_any_preference():
    long_one = "my_team.preferences.judges:prefer_answers_that_cite_a_source_and_stay_short"
    for preference in ("on_topic", "tests.simulate.prefs:prefer_long", long_one):
        names = annotator_names(preference, 3)
        assert len(set(names)) == 3
        assert all(re.fullmatch(USERNAME_PATTERN, n) and len(n) <= 64 for n in names), names


# ---- preference functions that misbehave: stopped before a run, with the reason --------------------------


def raises_on_everything(prompt: str, a: str, b: str) -> float:
    raise KeyError("subject")


def returns_two(prompt: str, a: str, b: str) -> float:
    return 2.0


def returns_text(prompt: str, a: str, b: str) -> str:
    return "a"


def test_a_preference_that_raises_or_leaves_minus_one_to_one_is_refused_when_loaded():
    here = "tests.simulate.test_simulate"
    with pytest.raises(
        ValueError, match=r"preference '.*:raises_on_everything' raised KeyError\('subject'\) on prompt"
    ):
        preferences.load(f"{here}:raises_on_everything")
    with pytest.raises(ValueError, match=r"returned 2\.0 on prompt .*must return a number in \[-1, 1\]"):
        preferences.load(f"{here}:returns_two")
    with pytest.raises(ValueError, match=r"returned 'a' on prompt"):
        preferences.load(f"{here}:returns_text")


def test_simulate_refuses_a_misbehaving_preference_before_it_provisions_anyone():
    result = CliRunner().invoke(
        cli, ["simulate", "--admin-token", "x", "--preference", "tests.simulate.test_simulate:returns_two"]
    )
    assert result.exit_code == 2 and "returned 2.0" in result.output and "[-1, 1]" in result.output


def test_a_preference_that_fails_midway_stops_the_annotator_instead_of_sending_a_verdict():
    def picky(prompt: str, a: str, b: str) -> float:
        if "camping" in prompt:
            return float("nan")
        return 1.0

    preference = preferences.checked("picky", picky)
    assert preference("Tell me about cats.", "x", "y") == 1.0
    with pytest.raises(preferences.PreferenceError, match=r"preference 'picky' returned nan on prompt 'camping"):
        preference("camping", "x", "y")
    spec = AnnotatorSpec("sim-0", preference)
    with pytest.raises(preferences.PreferenceError):
        decide(spec, "camping", "x", "y", random.Random(0))


def test_the_learning_benchmark_refuses_a_misbehaving_preference_before_it_bootstraps(tmp_path):
    result = subprocess.run(
        [sys.executable, "bench/bench_learning.py", "--preferences", "polite,tests.simulate.test_simulate:returns_two",
         "--keep", str(tmp_path / "kept")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 2 and "returned 2.0" in result.stderr
    assert not (tmp_path / "kept").exists(), "nothing was built"
