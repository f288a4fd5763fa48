"""The console through HTTP on SQLite and PostgreSQL: who may open it, forms with CSRF and
post/redirect/get, and bad input answered with the page, a clear message and a 4xx."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
from sqlalchemy import func, select

from app.auth.models import ApiToken, Role, User
from app.comparisons.models import Choice, Comparison
from app.core.db import utcnow
from app.judgments.models import Judgment
from app.policies import service as policies_service
from app.policies.models import PolicyStatus
from app.prompts.models import Prompt
from app.training import service as training_service
from app.training.models import RoundStatus, TrainingRound
from tests.admin.seed import WORKER, claim_round, finish_round
from tests.factories import (
    make_comparison,
    make_comparisons,
    make_judged_pair,
    make_judgment,
    make_policy_version,
    make_prompt,
    make_token,
    make_training_round,
    make_user,
    publish_policy_version,
)
from tests.helpers import csrf_from, login, session_cookie_text
from trainer.contract import DEFAULT_EVASION_PATTERNS

PAGES = [
    "/admin",
    "/admin/annotators",
    "/admin/prompts",
    "/admin/guidelines",
    "/admin/users",
    "/admin/gold",
    "/admin/judgments",
    "/admin/export",
    "/admin/policies",
    "/admin/rounds",
]
HTML = {"accept": "text/html"}


def flash(html: str) -> str:
    return re.search(r'class="alert success" role="status">([^<]*)<', html).group(1)


def error(html: str) -> str:
    return re.search(r'class="alert error" role="alert">([^<]*)<', html).group(1)


@pytest.fixture
def admin(client, db) -> int:
    """An admin signed in on `client`; their user id."""
    user_id = make_user(db, "boss", role=Role.admin)
    assert login(client, "boss").status_code == 303
    return user_id


@pytest.fixture
def submit(client, admin):
    """Post a console form as the signed-in admin, with the session's CSRF token."""
    csrf = csrf_from(client.get("/admin").text)

    def post(path: str, data: dict | None = None, **kwargs):
        return client.post(path, data={"csrf_token": csrf, **(data or {})}, **kwargs)

    return post


def count(db, model, *where) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


# --- who may open the console ------------------------------------------------------------------------


def test_every_console_page_opens_for_an_admin(client, db, admin):
    (comparison_id,) = make_comparisons(db, 1)
    for path in [*PAGES, f"/admin/comparisons/{comparison_id}"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert 'aria-current="page"' in response.text  # the sub-navigation marks where we are


def test_anonymous_browser_is_sent_to_sign_in(client):
    for path in PAGES:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == f"/login?next={path}"


def test_annotator_gets_403_on_every_page_and_form(client, db):
    make_user(db, "ann")
    login(client, "ann")
    csrf = csrf_from(client.get("/account").text)
    for path in PAGES:
        response = client.get(path, headers=HTML)
        assert response.status_code == 403, path
        assert "This page is for admins." in response.text
    form = {"csrf_token": csrf, "username": "mallory", "password": "x" * 12, "role": "admin"}
    refused = client.post("/admin/users", data=form, headers=HTML)
    assert refused.status_code == 403
    assert count(db, User, User.username == "mallory") == 0


def test_forms_without_the_csrf_token_change_nothing(client, db, admin):
    ann = make_user(db, "ann")
    response = client.post(f"/admin/users/{ann}/active", data={"active": "false"}, headers=HTML)
    assert response.status_code == 403 and "security token" in response.text
    with db.session() as session:
        assert session.get(User, ann).is_active


def test_error_pages_keep_the_signed_in_layout(client, admin):
    response = client.get("/admin/comparisons/999", headers=HTML)
    assert response.status_code == 404
    assert "Comparison 999 does not exist." in response.text and "boss" in response.text


# --- users, tokens, annotators -----------------------------------------------------------------------


def test_create_user_then_redirect_with_a_message(client, db, submit):
    response = submit(
        "/admin/users",
        {"username": "vendor-bot", "password": "long enough pw", "role": "annotator"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/admin/users"
    page = client.get("/admin/users").text
    assert flash(page) == "Created annotator vendor-bot."
    assert "vendor-bot" in page
    assert "Created annotator" not in client.get("/admin/users").text  # shown once


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        (
            {"username": "x", "password": "short", "role": "annotator"},
            422,
            "Password must be at least 8 characters.",
        ),
        (
            {"username": "  ", "password": "long enough pw", "role": "annotator"},
            422,
            "Username must not be empty.",
        ),
        (
            {"username": "x", "password": "long enough pw", "role": "superuser"},
            422,
            "Role must be admin or annotator (got &#39;superuser&#39;).",
        ),
        (
            {"username": "boss", "password": "long enough pw", "role": "admin"},
            409,
            "Username &#39;boss&#39; is already taken.",
        ),
    ],
)
def test_create_user_with_bad_input_rerenders_the_form(client, db, submit, form, status, message):
    response = submit("/admin/users", {**form})
    assert response.status_code == status
    assert error(response.text) == message
    assert f'name="username" value="{form["username"]}"' in response.text  # what was typed is kept
    assert count(db, User) == 1


def test_deactivate_and_exclude_an_annotator_from_the_annotators_page(client, db, submit):
    ann = make_user(db, "ann")
    response = submit(
        f"/admin/users/{ann}/active",
        {"active": "false", "next": "/admin/annotators", "confirmed": "yes"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/admin/annotators"
    submit(f"/admin/users/{ann}/training", {"excluded": "true", "next": "/admin/annotators"})
    with db.session() as session:
        user = session.get(User, ann)
        assert (user.is_active, user.excluded_from_training) == (False, True)
    page = client.get("/admin/annotators").text
    assert "Reactivate" in page and ">Include</button>" in page
    # Only console pages are followed after a form.
    offsite = submit(
        f"/admin/users/{ann}/active",
        {"active": "true", "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert offsite.headers["location"] == "/admin/users"


def test_admin_cannot_deactivate_their_own_account(client, db, admin, submit):
    response = submit(f"/admin/users/{admin}/active", {"active": "false"})
    assert response.status_code == 409, "refused at once, not after a confirmation"
    assert error(response.text) == "You cannot deactivate your own account."
    with db.session() as session:
        assert session.get(User, admin).is_active


def test_admin_creates_a_token_for_another_user_and_revokes_it(client, db, submit):
    vendor = make_user(db, "vendor")
    created = submit(
        f"/admin/users/{vendor}/tokens", {"name": "labeling vendor", "scopes": ["annotate"]}, follow_redirects=False
    )
    # Post/redirect/get: the token crosses the redirect sealed in the session, never readable in the cookie.
    assert (created.status_code, created.headers["location"]) == (303, "/admin/users")
    shown = client.get("/admin/users").text
    token = re.search(r'id="new-token">([^<]+)<', shown).group(1)
    assert "New token for <strong>vendor</strong>" in shown and 'data-copy="new-token"' in shown
    assert token not in session_cookie_text(created) and "pfl_" not in session_cookie_text(created)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["username"] == "vendor"
    assert token not in client.get("/admin/users").text  # shown once
    with db.session() as session:
        token_id = session.scalar(select(ApiToken.id).where(ApiToken.user_id == vendor))
    assert submit(f"/admin/users/{vendor}/tokens", {"name": " "}).status_code == 422
    revoked = submit(f"/admin/tokens/{token_id}/revoke")
    assert "is revoked" in flash(revoked.text)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_annotators_page_shows_the_statistics(client, db, admin):
    u1, u2 = make_user(db, "u1"), make_user(db, "u2")
    c1, c2, c3 = make_comparisons(db, 3, overlap_target=2)
    for comparison_id, first, second in ((c1, "a", "a"), (c2, "b", "a"), (c3, "tie", "tie")):
        make_judgment(db, comparison_id=comparison_id, annotator_id=u1, choice=first, time_spent_ms=4200)
        make_judgment(db, comparison_id=comparison_id, annotator_id=u2, choice=second, time_spent_ms=800)
    page = client.get("/admin/annotators").text
    # u1/u2: 2 of 3 agree, kappa 0.5 (see test_stats). Alpha: o_aa = 2, o_ab = o_ba = 1, o_tt = 2,
    # n = 6, n_a = 3, n_b = 1, n_tie = 2: 1 - 2 / ((36 - 14) / 5) = 6/11.
    row = page.split('id="pair-table"')[1]
    assert re.search(r"<td>u1</td><td>u2</td>\s*<td class=\"num\">3</td><td class=\"num\">67%</td>", row)
    assert ">0.50</span>" in row
    assert '<span class="stat-value" id="alpha">0.55</span>' in page
    assert "4.2 s" in page and "800 ms" in page
    assert '<a href="/admin/judgments?annotator=u1">3</a>' in page  # their judgments, in the browser


def test_annotators_page_without_overlap_shows_dashes(client, db, admin):
    make_user(db, "u1")
    page = client.get("/admin/annotators").text
    assert '<span class="stat-value" id="alpha">—</span>' in page
    assert "agreement is undefined (—)" in page


# --- guidelines ---------------------------------------------------------------------------------------


def test_guidelines_are_saved_and_rendered_without_raw_html(client, db, submit):
    text = "## Prefer **correct** answers\n\n<script>alert(1)</script>"
    response = submit("/admin/guidelines", {"markdown": text}, follow_redirects=False)
    assert response.status_code == 303
    page = client.get("/admin/guidelines").text
    assert "<strong>correct</strong>" in page and "<script>alert(1)</script>" not in page


def test_too_long_guidelines_are_refused_and_kept_in_the_form(client, db, submit):
    submit("/admin/guidelines", {"markdown": "old"})
    response = submit("/admin/guidelines", {"markdown": "x" * 50_001})
    assert response.status_code == 422
    assert error(response.text) == "Guidelines are limited to 50000 characters (got 50001)."
    assert "x" * 50_001 in response.text
    assert ">old</textarea>" in client.get("/admin/guidelines").text


# --- gold ---------------------------------------------------------------------------------------------


def test_mark_a_comparison_as_gold_and_see_accuracy(client, db, submit):
    (comparison_id,) = make_comparisons(db, 1, overlap_target=3)
    make_judgment(db, comparison_id=comparison_id, annotator_id=make_user(db, "right"), choice="b")
    make_judgment(db, comparison_id=comparison_id, annotator_id=make_user(db, "wrong"), choice="a")
    response = submit(
        "/admin/gold",
        {"comparison_id": str(comparison_id), "choice": "b", "next": f"/admin/comparisons/{comparison_id}"},
        follow_redirects=False,
    )
    assert response.headers["location"] == f"/admin/comparisons/{comparison_id}"
    with db.session() as session:
        comparison = session.get(Comparison, comparison_id)
        assert (comparison.is_gold, comparison.gold_choice) == (True, Choice.b)
    page = client.get(f"/admin/comparisons/{comparison_id}").text
    assert flash(page) == f"Comparison {comparison_id} is gold; expected answer: b."
    assert "✓" in page and "✗" in page
    gold = client.get("/admin/gold").text
    assert re.search(r'<td class="num">2</td>\s*<td class="num">1</td>\s*<td class="num">50%</td>', gold)
    annotators = {a["username"]: a for a in client.get("/api/v1/stats/annotators").json()}
    assert (annotators["right"]["gold_accuracy"], annotators["wrong"]["gold_accuracy"]) == (1.0, 0.0)

    submit(f"/admin/gold/{comparison_id}/clear")
    with db.session() as session:
        assert not session.get(Comparison, comparison_id).is_gold


def test_gold_is_set_changed_and_cleared_from_the_comparisons_own_page(client, db, submit):
    (comparison_id,) = make_comparisons(db, 1)
    page = f"/admin/comparisons/{comparison_id}"
    assert f'action="{page}/gold"' in client.get(page).text
    response = submit(f"{page}/gold", {"choice": "tie"}, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, page)
    assert flash(client.get(page).text) == f"Comparison {comparison_id} is gold; expected answer: tie."
    submit(f"{page}/gold", {"choice": "b"})
    with db.session() as session:
        comparison = session.get(Comparison, comparison_id)
        assert (comparison.is_gold, comparison.gold_choice) == (True, Choice.b)
    make_judgment(db, comparison_id=comparison_id, annotator_id=make_user(db, "judge"), choice="b")
    shown = client.get(page).text
    assert re.search(r'value="b" checked', shown) and "Remove from gold" in shown
    assert '<a href="/admin/judgments?annotator=judge">judge</a>' in shown
    cleared = submit(f"/admin/gold/{comparison_id}/clear", {"next": page}, follow_redirects=False)
    assert cleared.headers["location"] == page
    with db.session() as session:
        assert not session.get(Comparison, comparison_id).is_gold
    assert flash(client.get(page).text) == f"Comparison {comparison_id} is no longer gold."


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ("", "Choose the expected answer."),
        ("left", "Expected answer must be one of a, b, tie, both_bad (got &#39;left&#39;)."),
    ],
)
def test_bad_gold_answer_on_the_comparison_page_shows_that_page_again(client, db, submit, choice, message):
    (comparison_id,) = make_comparisons(db, 1)
    response = submit(f"/admin/comparisons/{comparison_id}/gold", {"choice": choice})
    assert response.status_code == 422
    assert error(response.text) == message
    assert f"<h1>Comparison #{comparison_id}</h1>" in response.text
    with db.session() as session:
        assert not session.get(Comparison, comparison_id).is_gold


def test_gold_for_a_missing_comparison_is_a_404(client, db, submit):
    response = submit("/admin/comparisons/999/gold", {"choice": "a"}, headers=HTML)
    assert response.status_code == 404
    assert "Comparison 999 does not exist." in response.text


def test_comparisons_show_which_policy_version_answered(client, db, admin):
    with db.session() as session:
        v1 = make_policy_version(session, number=1)
        v4 = make_policy_version(session, number=4, status=PolicyStatus.candidate)
        judged, ready = make_comparisons(session, 2, version_a_id=v4, version_b_id=v1)
        session.get(Comparison, judged).is_gold = True
        session.get(Comparison, judged).gold_choice = Choice.a
    page = client.get(f"/admin/comparisons/{judged}").text
    assert re.findall(r'<span class="version">policy v(\d+)</span>', page) == ["4", "1"]
    gold = client.get("/admin/gold").text
    assert gold.count("v4 · v1") == 2  # the gold set and the recent list
    assert "policy_version_id" not in page


@pytest.mark.parametrize(
    ("comparison_id", "choice", "status", "message"),
    [
        ("1", "left", 422, "Expected answer must be one of a, b, tie, both_bad (got &#39;left&#39;)."),
        ("abc", "a", 422, "Comparison id must be a number."),
        ("999", "a", 404, "Comparison 999 does not exist."),
    ],
)
def test_bad_gold_input_rerenders_the_form(client, db, submit, comparison_id, choice, status, message):
    make_comparisons(db, 1)
    response = submit("/admin/gold", {"comparison_id": comparison_id, "choice": choice})
    assert response.status_code == status
    assert error(response.text) == message
    assert count(db, Comparison, Comparison.is_gold.is_(True)) == 0


# --- prompts -----------------------------------------------------------------------------------------


def test_prompts_show_how_many_judgments_each_has(client, db, admin):
    alice, bob = make_user(db, "alice"), make_user(db, "bob")
    with db.session() as session:
        busy = make_prompt(session, text="A prompt judged three times")
        quiet = make_prompt(session, text="A prompt never judged")
        first, second = (make_comparison(session, prompt_id=busy, overlap_target=2) for _ in range(2))
    for comparison_id, annotator in ((first, alice), (first, bob), (second, alice)):
        make_judgment(db, comparison_id=comparison_id, annotator_id=annotator)
    page = client.get("/admin/prompts").text
    rows = {
        int(m[0]): m[1]
        for m in re.findall(r'<td class="num">(\d+)</td>\s*<td class="clip".*?<td class="num">(.*?)</td>', page, re.S)
    }
    assert rows[busy] == f'<a href="/admin/judgments?prompt={busy}">3</a>'
    assert rows[quiet] == "0"


def test_import_prompts_from_an_upload_then_search_and_deactivate(client, db, submit):
    jsonl = b'{"prompt": "How do tides work?", "tags": ["science"]}\n{"prompt": "Write a haiku about rain."}\n'
    response = submit(
        "/admin/prompts/import",
        {"source": "seed"},
        files={"file": ("prompts.jsonl", jsonl, "application/json")},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert flash(client.get("/admin/prompts").text) == "Imported 2 prompts (0 duplicates)."
    again = submit(
        "/admin/prompts/import",
        files={"file": ("prompts.csv", b"prompt\nHow do tides work?\nNew one\n", "text/csv")},
    )
    assert flash(again.text) == "Imported 1 prompts (1 duplicates)."

    found = client.get("/admin/prompts", params={"q": "TIDES"}).text
    assert "How do tides work?" in found and "haiku" not in found and ">science<" in found
    with db.session() as session:
        tides = session.scalar(select(Prompt.id).where(Prompt.text.like("%tides%")))
    submit(
        f"/admin/prompts/{tides}/active",
        {"active": "false", "next": "/admin/prompts?status=inactive", "confirmed": "yes"},
    )
    assert "How do tides work?" in client.get("/admin/prompts", params={"status": "inactive"}).text
    assert "How do tides work?" not in client.get("/admin/prompts", params={"status": "active"}).text


def test_a_bad_prompt_file_is_refused_whole_with_its_line_numbers(client, db, submit):
    bad = b'{"prompt": "fine"}\n{"prompt": ""}\nnot json\n'
    response = submit("/admin/prompts/import", files={"file": ("bad.jsonl", bad, "application/json")})
    assert response.status_code == 422
    assert error(response.text).startswith("2 bad lines in the file: line 2: ")
    assert count(db, Prompt) == 0
    skipped = submit(
        "/admin/prompts/import",
        {"skip_bad_lines": "true"},
        files={"file": ("bad.jsonl", bad, "application/json")},
    )
    assert flash(skipped.text).startswith("Imported 1 prompts (0 duplicates, 2 bad lines skipped: line 2: ")


def test_prompt_import_without_a_file_or_with_a_binary_one_is_refused(client, db, submit):
    missing = submit("/admin/prompts/import")
    assert missing.status_code == 422 and error(missing.text) == "Choose a JSONL or CSV file to import."
    binary = submit("/admin/prompts/import", files={"file": ("x.jsonl", b"\xff\xfe\x00", "application/octet-stream")})
    assert binary.status_code == 422 and "not UTF-8" in error(binary.text)


def test_an_oversized_prompt_file_is_refused_with_413(app, client, db, submit):
    app.state.settings.UPLOAD_MAX_BYTES = 64
    response = submit(
        "/admin/prompts/import", files={"file": ("big.jsonl", b'{"prompt": "x"}\n' * 10, "application/json")}
    )
    assert response.status_code == 413 and "larger than" in error(response.text)
    assert count(db, Prompt) == 0


# --- policies -----------------------------------------------------------------------------------------


def test_activate_a_newer_version_then_roll_back(client, db, settings, submit, active_policy, tiny_policy_dir):
    v2_id = publish_policy_version(
        settings,
        db,
        source_dir=tiny_policy_dir,
        number=2,
        parent_id=active_policy,
        status=PolicyStatus.candidate,
        metrics={"kl": 1.5},
    )
    page = client.get("/admin/policies").text
    assert "v1 → </span>v2" in page.replace("\n", "") and ">Activate<" in page
    activated = submit(f"/admin/policies/{v2_id}/activate", {"confirmed": "yes"}, follow_redirects=True)
    assert flash(activated.text) == "Policy v2 is active; the sampler switches to it."
    assert "Roll back to this" in activated.text
    submit(f"/admin/policies/{active_policy}/activate", {"confirmed": "yes"})
    with db.session() as session:
        assert policies_service.get_active(db=session).number == 1


def test_activating_a_version_without_files_is_refused_with_409(client, db, submit, active_policy):
    broken_id = make_policy_version(db, number=2, path="/nowhere", status=PolicyStatus.candidate)
    response = submit(f"/admin/policies/{broken_id}/activate", {"confirmed": "yes"})
    assert response.status_code == 409
    assert error(response.text).startswith("Policy version 2 cannot be activated: ")
    with db.session() as session:
        assert policies_service.get_active(db=session).number == 1


# --- rounds -------------------------------------------------------------------------------------------


def test_launch_a_round_with_settings_from_the_form(client, db, submit):
    form = client.get("/admin/rounds").text
    assert 'name="ppo.kl_coef"' in form and 'name="gates.min_rm_accuracy"' in form
    response = submit(
        "/admin/rounds",
        {"ppo.kl_coef": "0.2", "ppo.batch_size": "16", "activate": "false", "ppo.total_episodes": ""},
        follow_redirects=False,
    )
    assert response.status_code == 303
    round_id = int(response.headers["location"].rsplit("/", 1)[1])
    with db.session() as session:
        config = session.get(TrainingRound, round_id).config
    assert (config["ppo"]["kl_coef"], config["activate"], config["ppo"]["total_episodes"]) == (
        0.2,
        False,
        None,
    )
    page = client.get(f"/admin/rounds/{round_id}").text
    assert flash(page) == f"Round {round_id} is queued; a worker picks it up shortly."
    assert 'data-status="queued"' in page and "Cancel round" in page


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"ppo.kl_coef": "lots"}, "ppo.kl_coef: Input should be a valid number"),
        (
            {"ppo.batch_size": "10", "ppo.num_mini_batches": "3"},
            "ppo.num_mini_batches: num_mini_batches (3) must divide",
        ),
        ({"reference": "grandparent"}, "reference: Input should be &#39;base&#39; or &#39;previous&#39;"),
    ],
)
def test_a_bad_round_setting_rerenders_the_form_with_422(client, db, submit, form, message):
    response = submit("/admin/rounds", {**form})
    assert response.status_code == 422
    assert error(response.text).startswith(message)
    assert '<details class="launch" open>' in response.text  # the settings stay open, as typed
    assert count(db, TrainingRound) == 0


def test_evasion_patterns_are_edited_one_per_line_in_the_form(client, db, submit):
    form = client.get("/admin/rounds").text
    shown = re.search(r'<textarea name="evaluate.evasion_patterns"[^>]*>(.*?)</textarea>', form, re.S).group(1)
    assert unescape(shown).split("\n") == list(DEFAULT_EVASION_PATTERNS), "the default list, one per line"
    response = submit("/admin/rounds", {"evaluate.evasion_patterns": "as an AI\r\n\r\n\\bno idea\\b\r\n"})
    assert response.status_code == 200
    with db.session() as session:
        [round_] = session.scalars(select(TrainingRound)).all()
        assert round_.config["evaluate"]["evasion_patterns"] == ["as an AI", r"\bno idea\b"]


def test_an_evasion_pattern_that_does_not_compile_is_refused_naming_it(client, db, submit):
    typed = "as an AI\n(sorry|apolog"
    response = submit("/admin/rounds", {"evaluate.evasion_patterns": typed, "action": "check"})
    assert response.status_code == 422
    assert unescape(error(response.text)) == (
        "evaluate.evasion_patterns.1: '(sorry|apolog' is not a valid regular expression: missing ), unterminated "
        "subpattern at position 0"
    )
    assert f">{typed}</textarea>" in response.text, "the patterns stay as typed"
    assert count(db, TrainingRound) == 0


def test_a_round_page_shows_its_side_effects_and_why_the_evasion_gate_refused_it(client, db, submit):
    from trainer.contract import GateConfig
    from trainer.round import gate_verdicts

    evaluation = {"eval/kl": 1.0, "eval/eos_rate": 0.9, "eval/eos_rate_old": 0.95, "eval/evasion_rate": 0.73}
    evaluation |= {"eval/evasion_rate_old": 0.45, "eval/distinct_2": 0.3, "eval/distinct_2_old": 0.5}
    evaluation |= {"eval/response_length": 7.5, "eval/response_length_old": 12.0, "eval/distinct_1_old": 0.3}
    gates = GateConfig(min_rm_accuracy=0.6, max_kl=8.0, min_eos_rate=0.5, max_evasion_increase=0.05)
    verdicts = gate_verdicts({"evaluate": evaluation}, gates)
    round_id = make_training_round(
        db,
        status=RoundStatus.rejected,
        stage="evaluate",
        completed_stages=["snapshot", "reward_model", "ppo", "evaluate"],
        config={"gates": gates.model_dump()},
        results={"evaluate": evaluation, "gates": verdicts},
        error="Rejected by a gate: " + verdicts["evasion_increase"]["reason"],
    )
    for path in (f"/admin/rounds/{round_id}", f"/admin/rounds/{round_id}/live"):
        html = client.get(path).text
        section = re.search(r'<section [^>]*id="round-side-effects">.*?</section>', html, re.S).group(0)
        rows = {
            name: " ".join(unescape(re.sub(r"<[^>]+>", " ", row)).split())
            for name, row in re.findall(r'<tr data-side-effect="([^"]+)"[^>]*>(.*?)</tr>', section, re.S)
        }
        assert rows["eval/evasion_rate"] == (
            "refusals and evasions share matched by the evasion patterns · lower is better 45.0% 73.0% +28.0 pts"
        )
        assert rows["eval/distinct_2"].endswith("50.0% 30.0% -20.0 pts")
        assert rows["eval/distinct_1"].endswith("30.0% — —"), "a side not measured is not shown as 0"
        assert rows["eval/response_length"].endswith("12.0 7.5 -4.5 -38 %")
        assert 'data-side-effect="eval/evasion_rate" data-tone="bad"' in section
        assert 'class="delta delta-bad">+28.0 pts' in section
        assert 'data-gate="evasion_increase" data-verdict="failed"' in html
    page = " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
    assert "Rejected by a gate: rise of the share of held-out answers marked as evasions (parent 45.0%, new 73.0%)" in (
        page
    )


def test_the_policies_page_charts_side_effects_by_version_with_the_base_from_its_first_round(client, db, admin):
    figures = {"eval/evasion_rate": 0.2, "eval/distinct_2": 0.6, "eval/response_length": 11.0}
    parents = {"eval/evasion_rate_old": 0.1, "eval/distinct_2_old": 0.7, "eval/response_length_old": 12.0}
    v1 = make_policy_version(db, number=1, status=PolicyStatus.archived)
    v2 = make_policy_version(db, number=2, parent_id=v1, status=PolicyStatus.archived, metrics=figures | parents)
    make_policy_version(db, number=3, parent_id=v2, metrics={"eval/evasion_rate": 0.5, "eval/evasion_rate_old": 0.2})
    make_policy_version(db, number=4, status=PolicyStatus.candidate)  # registered by hand: nothing measured
    html = client.get("/admin/policies").text
    data = json.loads(unescape(re.search(r'<script type="application/json" id="side-effect-data">(.*?)</script>',
                                         html, re.S).group(1)))  # fmt: skip
    points = {p["version"]: p for p in data["points"]}
    assert list(points) == [1, 2, 3]
    assert (points[1]["eval/evasion_rate"], points[1]["eval/response_length"]) == (0.1, 12.0), "v2's parent side"
    assert (points[2]["eval/evasion_rate"], points[2]["eval/distinct_2"]) == (0.2, 0.6)
    assert (points[3]["eval/evasion_rate"], points[3]["eval/distinct_2"]) == (0.5, None), "not measured: a gap"
    assert [c["id"] for c in data["charts"]] == ["side-effect-shares", "side-effect-length"]
    assert 'id="chart-side-effect-shares"' in html and "js/admin-policies.js" in html


def test_a_refused_round_form_keeps_what_was_typed(client, submit):
    response = submit("/admin/rounds", {"ppo.kl_coef": "lots", "ppo.seed": "7"})
    assert 'name="ppo.kl_coef" type="number" step="any" value="lots"' in response.text
    assert 'name="ppo.seed" type="number" step="1" value="7"' in response.text


def test_new_judgments_count_from_the_last_snapshot_even_when_its_round_is_off_the_first_page(app, client, db, admin):
    app.state.settings.ADMIN_PAGE_SIZE = 1
    annotator = make_user(db, "ann")
    for comparison_id in make_comparisons(db, 3):
        make_judgment(db, comparison_id=comparison_id, annotator_id=annotator, choice="a")
    with db.session() as session:
        first, second, _third = session.scalars(select(Judgment.id).order_by(Judgment.id))
        # The snapshotted round is older than the one the first page shows, which never took a snapshot.
        session.add(TrainingRound(status=RoundStatus.succeeded, snapshot_max_judgment_id=second))
        session.flush()
        session.add(TrainingRound(status=RoundStatus.cancelled))
    page = client.get("/admin/rounds").text
    assert "1 new usable judgment since the last round's snapshot" in page


def test_cancel_and_retry_a_round_from_its_page(client, db, submit):
    submit("/admin/rounds")
    second = submit("/admin/rounds")
    assert second.status_code == 409 and "wait for it to finish or cancel it first" in error(second.text)

    round_id = claim_round(db)
    cancel = submit(f"/admin/rounds/{round_id}/cancel", {"confirmed": "yes"})
    assert flash(cancel.text) == f"Round {round_id} is being cancelled; its worker stops it."
    finish_round(db, round_id, RoundStatus.cancelled)
    refused = submit(f"/admin/rounds/{round_id}/cancel")  # refused at once, not after a confirmation
    assert refused.status_code == 409 and "only a queued or running round can be cancelled" in error(refused.text)
    retried = submit(f"/admin/rounds/{round_id}/retry")
    assert flash(retried.text) == f"Round {round_id} is queued again."
    assert client.get("/admin/rounds/999", headers=HTML).status_code == 404


def test_a_finished_round_shows_how_people_judged_its_version_against_the_parent(client, db, submit, active_policy):
    submit("/admin/rounds")
    round_id = claim_round(db)
    with db.session() as session:
        v2_id = make_policy_version(session, number=2, parent_id=active_policy, source=f"round {round_id}")
        training_service.finish(
            db=session,
            round_id=round_id,
            worker_id=WORKER,
            status=RoundStatus.succeeded,
            now=utcnow(),
            policy_version_id=v2_id,
        )
    waiting = client.get(f"/admin/rounds/{round_id}").text
    assert "No judgments of v2 against v1 yet" in waiting
    judges = [make_user(db, f"judge{i}") for i in range(3)]
    for i, choice in enumerate(["a"] * 6 + ["b"] * 2 + ["tie"] * 2):
        make_judged_pair(db, annotator_id=judges[i % 3], choice=choice, version_a_id=v2_id, version_b_id=active_policy)
    page = " ".join(re.sub(r"<[^>]+>", " ", client.get(f"/admin/rounds/{round_id}").text).split())
    assert "v2 won 75% of decided pairs against v1 (95% CI 41%–93%)" in page  # 6 / (6 + 2), Wilson
    assert "6 wins, 2 losses, 2 ties in people's judgments" in page


def test_ids_beyond_the_integer_columns_are_422_not_a_database_error(client, submit):
    too_big = 2**31
    for path in (f"/admin/comparisons/{too_big}", f"/admin/rounds/{too_big}"):
        assert client.get(path, headers=HTML).status_code == 422
    for path in (
        f"/admin/users/{too_big}/active",
        f"/admin/policies/{too_big}/activate",
        f"/admin/prompts/{too_big}/active",
        f"/admin/rounds/{too_big}/cancel",
    ):
        assert submit(path, {"active": "true"}, headers=HTML).status_code == 422
    gold = submit("/admin/gold", {"comparison_id": str(too_big), "choice": "a"})
    assert gold.status_code == 422 and error(gold.text) == "Comparison id must be a number."


# --- confirmations (without JavaScript: a page of its own; tests/browser/test_confirm.py has the dialog) ------


def confirmation(html: str) -> str:
    return " ".join(unescape(re.search(r'<p class="confirm-message">(.*?)</p>', html, re.S).group(1)).split())


def test_activate_asks_first_saying_how_many_ready_pairs_will_retire(
    client, db, settings, submit, active_policy, tiny_policy_dir
):
    v2 = publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    make_comparisons(db, 3)  # ready pairs of v1, unjudged: they retire once v2's pool is full
    make_comparisons(db, 1, judgment_count=1, overlap_target=2)  # partly judged: it stays to reach its overlap
    asked = submit(f"/admin/policies/{v2}/activate")
    assert asked.status_code == 200
    assert confirmation(asked.text) == (
        "Activate v2? v1 stops serving: the sampler generates with v2 from now on. 3 ready pairs from v1 keep "
        f"serving until the sampler has {settings.SAMPLER_LOW_WATER} of v2's ready, then retire (their judgments "
        "stay)."
    )
    assert 'name="confirmed" value="yes"' in asked.text and '<a href="/admin/policies">' in asked.text
    with db.session() as session:
        assert policies_service.get_active(db=session).number == 1, "nothing changed yet"
    submit(f"/admin/policies/{v2}/activate", {"confirmed": "yes"})
    rollback = submit(f"/admin/policies/{active_policy}/activate")
    assert confirmation(rollback.text).startswith("Roll back to v1? v2 stops serving")
    assert "No ready pairs retire." in confirmation(rollback.text)
    assert ">Roll back to v1</button>" in rollback.text
    with db.session() as session:
        assert policies_service.get_active(db=session).number == 2


def test_a_round_stored_before_gates_were_described_lists_each_gate_once(client, db, admin):
    # Verdicts as rounds stored them before they named their setting: only value, limit, passed and reason.
    old = {name: {"value": 1.0, "limit": 0.5, "passed": True, "reason": ""} for name in ("rm_accuracy", "finite")}
    old |= {"kl": {"value": 2.0, "limit": 8.0, "passed": True, "reason": ""}}
    old |= {"eos_rate": {"value": 1.0, "limit": 0.5, "passed": True, "reason": ""}}
    with db.session() as session:
        round_ = TrainingRound(
            status=RoundStatus.succeeded,
            config={"gates": {"min_rm_accuracy": 0.5, "max_kl": 8.0, "min_eos_rate": 0.5, "min_score_gain": None}},
            results={"gates": old},
        )
        session.add(round_)
        session.flush()
        round_id = round_.id
    for url in (f"/admin/rounds/{round_id}", f"/admin/rounds/{round_id}/live"):
        listed = re.findall(r'data-gate="([^"]+)" data-verdict="([^"]+)"', client.get(url).text)
        assert listed == [
            ("rm_accuracy", "passed"),
            ("finite", "passed"),
            ("kl", "passed"),
            ("eos_rate", "passed"),
            ("min_score_gain", "off"),
            ("max_evasion_increase", "off"),
            ("max_length_change", "off"),
            ("min_distinct_2_ratio", "off"),
        ]


def test_cancel_a_round_asks_first(client, db, submit):
    submit("/admin/rounds")
    round_id = claim_round(db)
    asked = submit(f"/admin/rounds/{round_id}/cancel")
    assert confirmation(asked.text) == (
        f"Cancel round {round_id}? Its trainer stops during snapshot; what it trained so far is deleted and "
        "nothing is published. A retry starts over from a new snapshot."
    )
    with db.session() as session:
        assert not training_service.get_or_raise(db=session, round_id=round_id).cancel_requested


def test_deactivating_a_user_or_a_prompt_asks_first(client, db, submit):
    ann = make_user(db, "ann")
    make_token(db, "ann")
    asked = submit(f"/admin/users/{ann}/active", {"active": "false", "next": "/admin/annotators"})
    assert confirmation(asked.text) == (
        "Deactivate ann? They are signed out everywhere and can no longer sign in; their 1 API token revoked for "
        "good (reactivating does not bring tokens back). Their judgments stay."
    )
    assert 'name="next" value="/admin/annotators"' in asked.text and 'name="active" value="false"' in asked.text
    (pair,) = make_comparisons(db, 1)
    with db.session() as session:
        prompt_id = session.get(Comparison, pair).prompt_id
    asked = submit(f"/admin/prompts/{prompt_id}/active", {"active": "false"})
    assert confirmation(asked.text) == (
        f"Deactivate prompt {prompt_id}? The sampler stops using it and its 1 ready pair retires from the queue. "
        "Its judgments stay, and it can be reactivated."
    )
    with db.session() as session:
        assert session.get(User, ann).is_active and session.get(Prompt, prompt_id).is_active, "nothing changed yet"
    reactivated = submit(f"/admin/users/{ann}/active", {"active": "true"}, follow_redirects=False)
    assert reactivated.status_code == 303, "undoing nothing needs no confirmation"
