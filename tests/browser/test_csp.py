"""The Content-Security-Policy in a real Chromium: the console's pages, the annotator's page and the API
reference run with no violation (no inline script or style to block), their charts and bars still drawn.
Screenshots: test-artifacts/csp-*.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from app.auth.models import Role
from tests.admin.seed import seed_console
from tests.browser.conftest import screenshot, sign_in
from tests.factories import make_user

pytestmark = pytest.mark.browser

# Runs before any page script; Playwright's init scripts are not subject to the page's policy.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  e => window.__cspViolations.push(e.effectiveDirective + " blocked " + (e.blockedURI || "inline")));
"""


def watch(page: Page) -> list[str]:
    """Collect CSP violations (the DOM event and Chromium's console report), script errors and console errors."""
    problems: list[str] = []
    page.add_init_script(RECORD_VIOLATIONS)
    # The browser's own /favicon.ico probe (the app has none) is not the page's doing.
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and not msg.location["url"].endswith("/favicon.ico")
            else None
        ),
    )
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return problems


def violations(page: Page) -> list[str]:
    return page.evaluate("window.__cspViolations")


def test_console_and_annotate_pages_run_under_the_policy_with_charts_drawn(live_server, browser_page):
    page, db = browser_page, live_server.db
    seeded = seed_console(db, live_server.settings, make_user(db, "ada", role=Role.admin))
    problems = watch(page)
    sign_in(page, live_server, "ada")
    assert violations(page) == []

    page.goto(live_server.url + "/admin")
    expect(page.locator("#hourly-chart canvas")).to_be_visible()
    expect(page.locator("#current-round .bar > span")).not_to_have_css("width", "0px")
    assert violations(page) == []

    page.goto(f"{live_server.url}/admin/rounds/{seeded['round_id']}")
    expect(page.locator("#chart-ppo-clipfrac canvas")).to_be_visible()
    expect(page.locator("#round .bar > span")).not_to_have_css("width", "0px")  # drawn without style=""
    assert violations(page) == []

    page.goto(live_server.url + "/admin/rounds")
    expect(page.locator("table .bar > span").first).not_to_have_css("width", "0px")
    assert violations(page) == []

    page.goto(live_server.url + "/admin/policies")
    expect(page.locator("#rating-chart canvas")).to_be_visible()  # drawn by a script file, not inline
    assert violations(page) == []
    screenshot(page, "csp-policies")

    page.goto(live_server.url + "/annotate")
    expect(page.locator("#pair-slot section.pair")).to_be_visible()
    page.keyboard.press("1")
    expect(page.locator("button[data-choice][aria-pressed=true]")).to_have_count(1)
    assert violations(page) == []
    screenshot(page, "csp-annotate")
    assert problems == []


def test_api_reference_renders_from_local_files_under_the_policy(live_server, browser_page):
    page = browser_page
    problems = watch(page)
    other_hosts: list[str] = []
    page.on(
        "request",
        lambda request: (
            other_hosts.append(request.url) if not request.url.startswith((live_server.url, "data:")) else None
        ),
    )
    page.goto(live_server.url + "/docs")
    # Swagger UI builds the page from a 1 MB script and the whole OpenAPI document: on a loaded machine that
    # takes longer than the default 5 s.
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("prefloop", timeout=20_000)
    expect(page.locator(".opblock-tag-section").first).to_be_visible(timeout=20_000)
    page.locator(".opblock-summary").first.click()  # an operation opens: the UI is live, not just painted
    expect(page.locator(".opblock.is-open").first).to_be_visible()
    assert violations(page) == []
    screenshot(page, "csp-docs", full_page=False)
    assert other_hosts == [] and problems == []
