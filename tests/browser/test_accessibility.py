"""axe-core (npm, pinned in package.json) on every page: no serious or critical violation."""

from pathlib import Path

import pytest
from django.urls import reverse

from ..tenant_pages import TENANT_PAGES
from .test_dashboard_browser import PASSWORD, browser, cast, login, wait_rendered  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
PAGES = TENANT_PAGES


def serious_violations(page):
    if not AXE.exists():
        pytest.fail(f"axe-core is missing: run npm ci ({AXE})")
    # Evaluated through the DevTools protocol: a <script> tag with its code would be an inline
    # script, which the page's Content-Security-Policy refuses.
    page.evaluate(AXE.read_text() + "\n;true")
    return page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
             .filter((v) => v.impact === "serious" || v.impact === "critical")
             .map((v) => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" "))}))"""
    )


@pytest.mark.parametrize(
    "viewport", [{"width": 1440, "height": 1000}, {"width": 390, "height": 844}], ids=["1440", "390"]
)
def test_no_serious_axe_violations_on_any_page(browser, live_server, cast, viewport):  # noqa: F811
    page = login(browser, live_server, cast, viewport=viewport)
    found = {}
    for name, params in PAGES:
        url = live_server.url + reverse(name, kwargs={"slug": "acme"})
        if params:
            url += "?" + "&".join(f"{key}={value}" for key, value in params.items())
        page.goto(url)
        if name == "usage:dashboard":
            wait_rendered(page)
        violations = serious_violations(page)
        if violations:
            found[url] = violations
    # The login page, signed out.
    anonymous = browser.new_page(viewport=viewport)
    anonymous.goto(live_server.url + "/accounts/login/")
    if violations := serious_violations(anonymous):
        found["login"] = violations
    assert found == {}


def test_skip_link_is_the_first_stop_and_moves_focus_to_the_content(browser, live_server, cast):  # noqa: F811
    page = login(browser, live_server, cast)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    assert page.locator(".skip-link").is_visible()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_k_tokens_label_is_readable(browser, live_server, cast):  # noqa: F811
    page = login(browser, live_server, cast)
    size = page.evaluate("getComputedStyle(document.querySelector('.stat-label small')).fontSize")
    assert float(size.rstrip("px")) >= 12


def test_trend_has_a_data_table_alternative(browser, live_server, cast):  # noqa: F811
    page = login(browser, live_server, cast)
    page.get_by_text("Show the trend as a table").click()
    table = page.get_by_role("region", name="Trend data").locator("table")
    assert table.locator("caption").inner_text().startswith("Total tokens per day")
    assert table.locator("tbody tr").count() == 14
    page.get_by_role("button", name="Input", exact=True).click()
    assert table.locator("caption").inner_text().startswith("Input tokens per day")
