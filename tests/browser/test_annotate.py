"""The annotator's page in a real Chromium: keyboard-only judging, double submits, skips, inert model
text, the empty pool, and what an annotator may not open. Screenshots land in test-artifacts/."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.admin import service as admin_service
from app.comparisons.models import Choice
from app.judgments.models import Judgment
from app.queue.models import QueueLock, Skip
from tests.browser.conftest import screenshot, sign_in
from tests.factories import make_comparison, make_comparisons, make_prompt, make_user

pytestmark = pytest.mark.browser

PAIR = "#pair-slot section.pair"


def pair_on_screen(page: Page) -> int:
    return int(page.get_attribute(PAIR, "data-comparison-id"))


def eventually(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def wait_for_pair_after(page: Page, comparison_id: int) -> None:
    page.wait_for_function(
        "id => { const s = document.querySelector('#pair-slot section'); "
        "return s && s.dataset.comparisonId !== String(id); }",
        arg=comparison_id,
    )


def test_ten_pairs_judged_with_the_keyboard_only_are_stored_through_the_left_right_swap(
    browser_page: Page, live_server
):
    page = browser_page
    page = browser_page
    make_user(live_server.db, "alice")
    make_comparisons(live_server.db, 12)
    sign_in(page, live_server, "alice", next="/annotate")
    keys = ["1", "2", "3", "4", "1", "2", "1", "2", "3", "1"]
    strengths = {0: "q", 1: "e", 4: "w"}
    expected = {}
    for i, key in enumerate(keys):
        comparison_id = pair_on_screen(page)
        left_text = page.inner_text(f"{PAIR} .response[data-side=left] .md")
        page.keyboard.press(key)
        if i in strengths:
            page.keyboard.press(strengths[i])
        if i == 0:
            screenshot(page, "annotate-selected")
        page.keyboard.press("Enter")
        wait_for_pair_after(page, comparison_id)
        left = left_text.strip()[-1]  # builder texts end in "answer a" / "answer b"
        side = {"1": "left", "2": "right", "3": "tie", "4": "both_bad"}[key]
        choice = {"left": left, "right": "b" if left == "a" else "a"}.get(side, side)
        expected[comparison_id] = (Choice(choice), left, {"q": 1, "w": 2, "e": 3}.get(strengths.get(i)))
    expect(page.locator("#count-today")).to_have_text("10")
    expect(page.locator("#count-total")).to_have_text("10")
    with live_server.db.session() as session:
        stored = list(session.scalars(select(Judgment).order_by(Judgment.id)))
    assert {j.comparison_id: (j.choice, j.shown_left, j.strength) for j in stored} == expected
    assert all(j.channel == "browser" and j.client_time_spent_ms is not None for j in stored)
    assert len({j.client_request_id for j in stored}) == 10


def test_a_double_submit_and_a_resent_request_store_one_judgment(browser_page: Page, live_server):
    page = browser_page
    make_user(live_server.db, "alice")
    make_comparisons(live_server.db, 3)
    sign_in(page, live_server, "alice", next="/annotate")
    first = pair_on_screen(page)
    page.keyboard.press("2")
    # Two clicks in the same task: the second comes before the first request has answered.
    page.evaluate("() => { const b = document.getElementById('submit-button'); b.click(); b.click(); }")
    wait_for_pair_after(page, first)
    page.keyboard.press("Enter")  # nothing chosen yet on the new pair: nothing is sent
    second = pair_on_screen(page)
    statuses = page.evaluate(
        """async (id) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const send = () => fetch('/api/v1/judgments', {method: 'POST', headers: {
                'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                body: JSON.stringify({comparison_id: id, choice: 'tie', client_request_id: 'resent-1'})});
            return [(await send()).status, (await send()).status];
        }""",
        second,
    )
    assert statuses == [201, 200]
    with live_server.db.session() as session:
        stored = [(j.comparison_id, j.choice) for j in session.scalars(select(Judgment).order_by(Judgment.id))]
    assert [comparison_id for comparison_id, _ in stored] == [first, second]
    assert stored[1][1] == Choice.tie


def test_the_prefetched_pair_is_handed_back_when_the_page_closes(browser_page: Page, live_server):
    page = browser_page
    make_user(live_server.db, "alice")
    make_comparisons(live_server.db, 3)
    sign_in(page, live_server, "alice", next="/annotate")
    on_screen = pair_on_screen(page)

    def held() -> list[int]:
        with live_server.db.session() as session:
            return sorted(session.scalars(select(QueueLock.comparison_id)))

    assert eventually(lambda: len(held()) == 2)  # the pair on screen, and the one prefetched behind it
    page.goto(f"{live_server.url}/account")
    assert eventually(lambda: held() == [on_screen])


def test_skip_with_the_keyboard_records_the_reason(browser_page: Page, live_server):
    page = browser_page
    make_user(live_server.db, "alice")
    make_comparisons(live_server.db, 2)
    sign_in(page, live_server, "alice", next="/annotate")
    first = pair_on_screen(page)
    page.keyboard.press("s")
    expect(page.locator("#skip-dialog")).to_be_visible()
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    wait_for_pair_after(page, first)
    with live_server.db.session() as session:
        skip = session.scalar(select(Skip))
        assert (skip.comparison_id, skip.reason) == (first, "The prompt is broken or unclear")
        assert session.scalars(select(Judgment)).all() == []


def test_model_text_cannot_run_script_even_when_it_arrives_prefetched(browser_page: Page, live_server):
    page = browser_page
    make_user(live_server.db, "alice")
    make_comparisons(live_server.db, 1)
    make_comparison(
        live_server.db,
        prompt_id=make_prompt(live_server.db, text="<script>window.__pwned = 'prompt'</script>"),
        text_a="<img src=x onerror=\"window.__pwned = 'img'\">",
        text_b=("<svg onload=\"window.__pwned = 'svg'\"></svg>\n\n```html\n<script>window.__pwned = 1</script>\n```"),
    )
    sign_in(page, live_server, "alice", next="/annotate")
    first = pair_on_screen(page)
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    wait_for_pair_after(page, first)
    expect(page.locator(PAIR)).to_contain_text("<img src=x onerror=")
    expect(page.locator(PAIR)).to_contain_text("<script>window.__pwned = 'prompt'</script>")
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator(f"{PAIR} img, {PAIR} svg, {PAIR} script").count() == 0


def test_the_empty_pool_message_refreshes_by_itself(browser_page: Page, live_server):
    page = browser_page
    make_user(live_server.db, "alice")
    sign_in(page, live_server, "alice", next="/annotate")
    expect(page.locator("#pair-slot")).to_contain_text("No pairs ready; generating more.")
    expect(page.locator("#verdict")).to_be_hidden()
    screenshot(page, "annotate-empty", full_page=False)
    [pair_id] = make_comparisons(live_server.db, 1)
    expect(page.locator(PAIR)).to_have_attribute("data-comparison-id", str(pair_id), timeout=5000)
    expect(page.locator("#verdict")).to_be_visible()


def test_an_annotator_cannot_open_admin_routes(browser_page: Page, live_server):
    page = browser_page
    make_user(live_server.db, "alice")
    sign_in(page, live_server, "alice", next="/annotate")
    expect(page.locator(".topbar nav")).not_to_contain_text("Console")
    response = page.goto(f"{live_server.url}/api/v1/users")
    assert response.status == 403
    assert "Admin role required." in page.content()


def test_screenshots_of_a_realistic_pair(browser_page: Page, live_server):
    page = browser_page
    make_user(live_server.db, "alice")
    with live_server.db.session() as session:
        admin_service.set_guidelines(
            db=session,
            markdown=(
                "Prefer the response that is **correct**, then the one that is *helpful* and concise.\n\n"
                "- Penalise made-up facts heavily.\n- A tie means both are equally good."
            ),
        )
    tutoring = [
        {"role": "system", "content": "You are a concise Python tutor."},
        {"role": "user", "content": "How do I reverse a list in Python without changing the original?"},
    ]
    make_comparisons(
        live_server.db,
        2,
        prompt_id=make_prompt(live_server.db, messages=tutoring),
        text_a=(
            "Use slicing, which returns a new list:\n\n```python\nitems = [1, 2, 3]\n"
            "reversed_items = items[::-1]\n```\n\n`items` stays `[1, 2, 3]`."
        ),
        text_b=(
            "You can call `reverse()`:\n\n```python\nitems.reverse()\n```\n\n"
            "Other options:\n- `reversed(items)` gives an iterator\n"
            "- `sorted(items, reverse=True)` sorts"
        ),
    )
    sign_in(page, live_server, "alice", next="/annotate")
    page.click("#guidelines summary")
    slicing_on_the_left = "slicing" in page.inner_text(f"{PAIR} .response[data-side=left]")
    page.keyboard.press("1" if slicing_on_the_left else "2")
    page.keyboard.press("w")
    page.fill("#rationale", "Slicing keeps the original list intact, as asked.")
    chosen = "left" if slicing_on_the_left else "right"
    expect(page.locator(f"{PAIR} .response[data-side={chosen}]")).to_have_class("response chosen")
    screenshot(page, "annotate")
    page.set_viewport_size({"width": 420, "height": 900})
    screenshot(page, "annotate-narrow")
    left, right = (page.locator(f"{PAIR} .response[data-side={side}]").bounding_box() for side in ("left", "right"))
    assert right["y"] >= left["y"] + left["height"]  # stacked on a narrow screen


def test_enter_without_a_verdict_says_what_is_missing(browser_page: Page, live_server):
    page = browser_page
    make_user(live_server.db, "alice")
    make_comparisons(live_server.db, 2)
    sign_in(page, live_server, "alice", next="/annotate")
    first = pair_on_screen(page)
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text("Pick a verdict first (keys 1–4).")
    screenshot(page, "annotate-no-verdict", full_page=False)
    assert pair_on_screen(page) == first
    page.keyboard.press("1")  # a verdict ends the hint
    expect(page.locator("#status")).to_have_text("")
    with live_server.db.session() as session:
        assert session.scalar(select(Judgment)) is None


def test_saved_shows_in_the_action_row_and_ends_with_the_next_verdict(browser_page: Page, live_server):
    page = browser_page
    make_user(live_server.db, "alice")
    make_comparisons(live_server.db, 3)
    sign_in(page, live_server, "alice", next="/annotate")
    first = pair_on_screen(page)
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    wait_for_pair_after(page, first)
    status = page.locator("#status")
    expect(status).to_have_text("Saved. Here is the next pair.")
    screenshot(page, "annotate-saved", full_page=False)
    card = page.locator("#verdict").bounding_box()
    box = status.bounding_box()
    # Inside the verdict card: it no longer sits over response B's border above the card.
    assert card["y"] <= box["y"] and box["y"] + box["height"] <= card["y"] + card["height"]
    assert card["x"] <= box["x"] and box["x"] + box["width"] <= card["x"] + card["width"]
    page.keyboard.press("1")  # the next pair's verdict: the message about the last one goes
    expect(status).to_have_text("")


def test_a_phone_keeps_sign_out_on_one_line_and_the_rationale_hint_whole(browser_page: Page, live_server):
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    make_user(live_server.db, "alice")
    make_comparisons(live_server.db, 1)
    sign_in(page, live_server, "alice", next="/annotate")
    sign_out = page.locator("header button:has-text('Sign out')").bounding_box()
    brand = page.locator("header .brand").bounding_box()
    assert sign_out["height"] < 1.5 * brand["height"]  # one line
    assert sign_out["x"] + sign_out["width"] <= 390
    # The placeholder's text fits the box it is drawn in.
    assert page.evaluate(
        """() => {
          const box = document.getElementById("rationale");
          const style = getComputedStyle(box);
          const context = document.createElement("canvas").getContext("2d");
          context.font = `${style.fontSize} ${style.fontFamily}`;
          const room = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
          return context.measureText(box.placeholder).width <= room;
        }"""
    )
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("Pick a verdict first")
    screenshot(page, "annotate-phone")
