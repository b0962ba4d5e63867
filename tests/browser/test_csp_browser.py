"""Under the Content-Security-Policy the pages still work in Chromium: no violation is reported
(neither a 'securitypolicyviolation' event nor a console message) and their scripts ran."""

import re

import pytest
from django.urls import reverse

from accounts.models import User
from usage.models import Budget

from .chromium import wait_until
from .test_dashboard_browser import browser, cast, login, wait_rendered  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


def _watched(page, messages):
    page.add_init_script(WATCH)
    page.on("console", lambda message: messages.append(message.text))
    page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))


def _violations(page, messages):
    events = page.evaluate("window.__csp || []")
    console = [text for text in messages if "Content Security Policy" in text or "pageerror" in text]
    return events + console


def test_pages_work_under_the_policy(browser, live_server, cast):  # noqa: F811
    User.objects.filter(email="member@acme.test").update(is_staff=True, is_superuser=True)
    Budget.objects.create(tenant=cast["tenant"], name="Monthly tokens", metric="tokens", amount=10**6, period="month")
    messages = []
    page = login(browser, live_server, cast, viewport={"width": 1440, "height": 1000})
    _watched(page, messages)
    found = {}

    # The dashboard: both charts drawn, the range picker opens (its script ran).
    page.goto(page.url)
    wait_rendered(page)
    assert page.evaluate("Boolean(Chart.getChart('trend-chart') && Chart.getChart('distribution-chart'))")
    assert page.evaluate("Chart.getChart('trend-chart').data.datasets.length") == 5
    page.get_by_role("button", name="Time range").click()
    assert page.locator("#range-panel").is_visible()
    found["dashboard"] = _violations(page, messages)

    page.goto(live_server.url + reverse("reports:operations", kwargs={"slug": "acme"}))
    wait_until(page, "document.getElementById('weekly-chart')?.dataset.rendered === 'true'")
    assert page.evaluate("Chart.getChart('weekly-chart').data.datasets.length") == 5
    found["operations"] = _violations(page, messages)

    page.goto(live_server.url + reverse("budgets:list", kwargs={"slug": "acme"}))
    bar = page.locator(".budget-bar rect.budget-fill").first
    assert bar.bounding_box()["width"] > 0
    found["budgets"] = _violations(page, messages)

    # The admin's own scripts: "select all" ticks every row of a changelist.
    page.goto(live_server.url + reverse("admin:usage_model_changelist"))
    page.locator("#action-toggle").check()
    boxes = page.locator("input.action-select")
    assert boxes.count() == 5 and all(box.is_checked() for box in boxes.all())
    assert re.search(r"5 of 5 selected", page.locator(".action-counter").inner_text())
    found["admin changelist"] = _violations(page, messages)

    # Swagger UI (served locally) renders the schema.
    page.goto(live_server.url + reverse("api_docs"))
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    found["api docs"] = _violations(page, messages)

    assert found == {name: [] for name in found}

    # The watch itself works: an inline style attribute set by a script is refused and reported.
    page.evaluate("document.body.setAttribute('style', 'color: red')")
    wait_until(page, "window.__csp.length > 0")
    assert _violations(page, messages)[0].startswith("style-src")
