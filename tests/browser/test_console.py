"""The console's judgments browser, export download and token form in a real Chromium, with screenshots
at desktop and phone widths (test-artifacts/*.png)."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from app.auth.models import Role
from tests.admin.seed import seed_console
from tests.browser.conftest import screenshot, sign_in
from tests.factories import make_user

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def fits_the_width(page: Page) -> bool:
    """Nothing on the page is wider than the window (no sideways scrolling of the whole page)."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.fixture
def console(live_server, browser_page) -> tuple[Page, dict[str, int]]:
    """An admin signed in on a console with a day of data; errors in the page's console fail the test (the
    browser's own note on a page answered 422, which the bad-input tests ask for, aside)."""
    admin_id = make_user(live_server.db, "ada", role=Role.admin)
    seeded = seed_console(live_server.db, live_server.settings, admin_id)
    sign_in(browser_page, live_server, "ada")
    errors: list[str] = []
    browser_page.on("pageerror", lambda exc: errors.append(str(exc)))
    browser_page.on(
        "console",
        lambda msg: errors.append(msg.text) if msg.type == "error" and "status of 422" not in msg.text else None,
    )
    yield browser_page, seeded
    assert errors == []


def test_judgments_browser_filters_in_the_address_and_opens_the_comparison(live_server, console):
    page, _ = console
    page.goto(live_server.url + "/admin")
    page.click("nav.subnav >> text=Judgments")
    expect(page.locator("#judgment-table tbody tr")).to_have_count(live_server.settings.ADMIN_PAGE_SIZE)
    screenshot(page, "judgments")
    page.select_option("select[name=annotator]", "omar")
    page.select_option("select[name=choice]", "tie")
    page.click("#judgment-filters button[type=submit]")
    page.wait_for_url(re.compile(r".*annotator=omar.*choice=tie.*"))
    rows = page.locator("#judgment-table tbody tr")
    assert rows.count() >= 1
    for i in range(rows.count()):
        expect(rows.nth(i)).to_contain_text("omar")
        expect(rows.nth(i).locator(".pill").first).to_have_text("tie")
    shared = page.url
    page.goto(shared)  # the filtered list is a link to share
    expect(page.locator("select[name=annotator]")).to_have_value("omar")
    expect(page.locator("#judgment-count")).to_contain_text(f"{rows.count()} judgment")
    page.set_viewport_size(PHONE)
    screenshot(page, "judgments-phone")
    assert fits_the_width(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    comparison = page.locator("#judgment-table tbody tr >> nth=0 >> td >> nth=-1").inner_text().lstrip("#")
    page.click("#judgment-table tbody tr >> nth=0 >> td >> nth=-1 >> a")
    page.wait_for_url(f"**/admin/comparisons/{comparison}")
    expect(page.locator(".version").first).to_contain_text(re.compile(r"policy v\d"))


def test_a_bad_filter_is_a_message_on_the_page(live_server, console):
    page, _ = console
    response = page.goto(live_server.url + "/admin/judgments?prompt=abc&since=2026-13-01")
    assert response.status == 422
    expect(page.locator(".alert.error")).to_contain_text("Prompt id: Input should be a valid integer")
    expect(page.locator(".alert.error")).to_contain_text("From: Input should be a valid date")
    expect(page.locator("#judgment-filters")).to_be_visible()  # the form stays, to fix the value


def test_a_bad_filter_typed_in_the_form_keeps_the_others(live_server, console):
    page, _ = console
    page.goto(live_server.url + "/admin/judgments")
    page.select_option("select[name=annotator]", "omar")
    page.select_option("select[name=choice]", "tie")
    page.fill("input[name=since]", "2026-12-01")
    page.fill("input[name=prompt]", "12x")
    page.click("#judgment-filters button[type=submit]")
    expect(page.locator(".alert.error")).to_contain_text("Prompt id: Input should be a valid integer")
    expect(page.locator("select[name=annotator]")).to_have_value("omar")
    expect(page.locator("select[name=choice]")).to_have_value("tie")
    expect(page.locator("input[name=since]")).to_have_value("2026-12-01")
    expect(page.locator("input[name=prompt]")).to_have_value("12x")  # as typed, to fix
    screenshot(page, "judgments-bad-filter")
    page.set_viewport_size(PHONE)
    screenshot(page, "judgments-bad-filter-phone")
    assert fits_the_width(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.fill("input[name=prompt]", "")
    page.click("#judgment-filters button[type=submit]")
    page.wait_for_url(re.compile(r".*annotator=omar.*"))
    expect(page.locator(".alert.error")).to_have_count(0)
    expect(page.locator("#judgment-count")).to_be_visible()


def test_console_export_counts_then_downloads_the_file(live_server, console):
    page, _ = console
    page.goto(live_server.url + "/admin/export")
    page.select_option("select[name=format]", "raw")
    page.select_option("select[name=annotator]", "lena")
    page.click("#export-form button:has-text('Count')")
    expect(page.locator("#export-count")).to_contain_text("the file will hold")
    rows = int(re.search(r"hold (\d+) row", page.locator("#export-count").inner_text()).group(1))
    assert rows > 0
    screenshot(page, "export")
    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert re.fullmatch(r"prefloop-raw-\d{8}T\d{6}Z\.jsonl", download.suggested_filename)
    lines = [json.loads(line) for line in open(download.path()).read().splitlines()]  # noqa: SIM115
    assert len(lines) == rows
    assert len({line["judge"] for line in lines}) == 1  # one annotator's judgments
    page.set_viewport_size(PHONE)
    screenshot(page, "export-phone")
    assert fits_the_width(page)


def test_a_bad_export_stays_on_the_page_with_the_message(live_server, console):
    page, _ = console
    response = page.goto(live_server.url + "/admin/export/file?format=raw&aggregate=majority")
    assert response.status == 422
    expect(page.locator(".alert.error")).to_contain_text("format=raw has one row per judgment")


def test_a_bad_export_filter_keeps_the_rest_of_the_form(live_server, console):
    page, _ = console
    page.goto(live_server.url + "/admin/export")
    page.select_option("select[name=format]", "kto")
    page.select_option("select[name=annotator]", "lena")
    page.fill("input[name=prompt]", "seven")
    page.click("#export-form button:has-text('Count')")
    expect(page.locator(".alert.error")).to_contain_text("Prompt id: Input should be a valid integer")
    expect(page.locator("select[name=format]")).to_have_value("kto")
    expect(page.locator("select[name=annotator]")).to_have_value("lena")
    expect(page.locator("input[name=prompt]")).to_have_value("seven")
    screenshot(page, "export-bad-filter")
    page.set_viewport_size(PHONE)
    screenshot(page, "export-bad-filter-phone")
    assert fits_the_width(page)


def test_token_creation_redirects_shows_once_and_copies(live_server, console, browser_page):
    page, _ = console
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(live_server.url + "/admin/users")
    row = page.locator("#user-table tbody tr", has_text="lena")
    row.locator("summary").click()
    row.locator("input[name=name]").fill("notebook")
    row.locator("button:has-text('Create token')").click()
    page.wait_for_url(f"{live_server.url}/admin/users")  # post/redirect/get
    token = page.locator("#new-token").inner_text()
    assert token.startswith("pfl_")
    page.click("#copy-token")
    expect(page.locator("#copy-token")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == token
    screenshot(page, "token-created", full_page=False)
    page.set_viewport_size(PHONE)
    screenshot(page, "token-created-phone", full_page=False)
    page.reload()  # a GET: nothing is re-submitted, and the token is not shown again
    expect(page.locator("#new-token")).to_have_count(0)
    expect(page.locator("#token-table tbody tr", has_text="notebook")).to_have_count(1)


def test_console_nav_fits_a_phone(live_server, console):
    page, _ = console
    page.set_viewport_size(PHONE)
    page.goto(live_server.url + "/admin/judgments")
    nav = page.locator("nav.subnav")
    for label in ("Judgments", "Export"):
        expect(nav.locator(f"text={label}")).to_be_visible()
    assert fits_the_width(page)
    screenshot(page, "console-nav-phone", full_page=False)


def test_gold_is_set_and_cleared_on_the_comparisons_page(live_server, console):
    page, _ = console
    page.goto(live_server.url + "/admin/judgments?choice=b")
    page.click("#judgment-table tbody tr >> nth=0 >> td >> nth=-1 >> a")
    expect(page.locator(".version")).to_have_count(2)
    page.check("input[name=choice][value=b]")
    page.click("#gold-form button[type=submit]")
    expect(page.locator(".alert.success")).to_contain_text("is gold; expected answer: b.")
    expect(page.locator(".completion.expected .card-head h2")).to_have_text("Completion B")
    screenshot(page, "comparison-gold")
    page.set_viewport_size(PHONE)
    screenshot(page, "comparison-gold-phone")
    assert fits_the_width(page)
    page.click("button:has-text('Remove from gold')")
    expect(page.locator(".alert.success")).to_contain_text("is no longer gold.")
    expect(page.locator(".completion.expected")).to_have_count(0)


def test_prompts_page_links_judgment_counts_to_the_browser(live_server, console):
    page, _ = console
    page.goto(live_server.url + "/admin/prompts")
    link = page.locator("#prompt-table tbody tr td.num a").first
    count = int(link.inner_text())
    link.click()
    expect(page.locator("#judgment-count")).to_contain_text(f"{count} judgment")
    page.goto(live_server.url + "/admin/prompts")
    page.set_viewport_size(PHONE)
    screenshot(page, "prompts-phone")
    assert fits_the_width(page)
