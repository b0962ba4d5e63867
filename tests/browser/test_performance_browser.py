"""The Performance view and the calls explorer in headless Chromium (issue 27): the chart draws the
ledger's calls per hour, marks the hour that departs from previous weeks, switches metric without a
reload, and a click on the point opens the calls behind that hour; the explorer filters and pages.
Two tenants have calls in the same hours: each sees only its own."""

import datetime as dt
import re
from urllib.parse import quote

import pytest
from django.utils import timezone

from accounts import services
from accounts.models import Membership, User
from usage.ingestion.services import call_records_ingest

from .chromium import wait_until
from .test_dashboard_browser import PASSWORD, browser  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _call(key, request_id, at, **fields):
    return {
        "request_id": request_id,
        "api_key": key.public_id,
        "model": "public/deepseek-r1",
        "occurred_at": at.isoformat(),
        "input_tokens": 100,
        "output_tokens": 50,
        **fields,
    }


@pytest.fixture
def cast(db):
    """Acme and Globex (both UTC), one viewer of both. The same hour of the four previous weeks at
    ~1 s; that hour today: Acme 60 calls at ~3 s, 6 of them rate limited; Globex 20 calls at 9 s."""
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=2)
    if hour.date() != now.date():  # just after midnight: use yesterday's range for both
        now = hour.replace(hour=23, minute=59)
    user = User.objects.create_user("ops@both.test", PASSWORD)
    keys = {}
    for slug in ("acme", "globex"):
        tenant = services.tenant_create(slug=slug, name=slug.title(), timezone_name="UTC")
        Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.VIEWER)
        keys[slug] = services.api_key_create(tenant=tenant, name="web")[0]
    items = []
    for week in range(1, 5):
        for n in range(30):
            at = hour - dt.timedelta(weeks=week) + dt.timedelta(seconds=50 * n)
            items.append(_call(keys["acme"], f"w{week}-{n}", at, duration_ms=1000 + n, status="ok"))
    for n in range(60):
        fields = {"status": "error", "error_type": "rate_limited"} if n % 10 == 0 else {"status": "ok"}
        at = hour + dt.timedelta(seconds=50 * n)
        items.append(_call(keys["acme"], f"now-{n:02d}", at, duration_ms=3000 + n, **fields))
    for n in range(20):
        items.append(_call(keys["globex"], f"g-{n}", hour + dt.timedelta(seconds=60 * n), duration_ms=9000))
    assert call_records_ingest(items=items).rejected == 0
    return {"hour": hour, "keys": keys, "day": hour.date().isoformat()}


def login(browser, live_server, next_url):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/accounts/login/?next={quote(next_url)}")
    page.get_by_label("Email", exact=True).fill("ops@both.test")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(re.escape(next_url.split("?")[0])))
    return page


def test_performance_view_chart_departure_and_calls_behind_the_hour(browser, live_server, cast):  # noqa: F811
    day, index = cast["day"], cast["hour"].hour
    page = login(browser, live_server, f"/t/acme/usage/?start={day}&end={day}")
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.get_by_role("link", name="Performance", exact=True).click()
    page.wait_for_url(re.compile(r"view=performance"))
    wait_until(page, "document.getElementById('performance-chart')?.dataset.ready === 'true'")

    calls = page.evaluate("Chart.getChart('performance-chart').data.datasets[0].data")
    assert calls[index] == 60 and sum(calls) == 60  # Acme's calls only
    assert page.locator('[data-card="error_rate"] .stat-value').inner_text() == "10.0"
    assert page.locator('[data-card="peak"] .stat-value').inner_text() == "60"
    [departure] = page.locator("#departures li").all()
    assert "public/deepseek-r1" in departure.inner_text() and "error rate 10.0%" in departure.inner_text()
    marker = page.evaluate(f"Chart.getChart('performance-chart').data.datasets[1].pointStyle[{index}]")
    assert marker == "triangle"

    # The metric switch redraws without a reload.
    page.get_by_role("button", name="Error rate (%)").click()
    rates = page.evaluate("Chart.getChart('performance-chart').data.datasets[1].data")
    assert rates[index] == 10.0
    assert page.get_by_role("button", name="Error rate (%)").get_attribute("aria-pressed") == "true"

    # A click on the spike's point: the calls behind that hour, newest first.
    box = page.locator("#performance-chart").bounding_box()
    meta = "Chart.getChart('performance-chart').getDatasetMeta(1)"
    point = page.evaluate(f"[{meta}.data[{index}].x, {meta}.data[{index}].y]")
    page.mouse.click(box["x"] + point[0], box["y"] + point[1])
    page.wait_for_url(re.compile(r"/t/acme/calls/\?.*hour="))
    ids = [row.get_attribute("data-request-id") for row in page.locator("#calls-table tbody tr").all()]
    assert ids == [f"now-{n:02d}" for n in range(59, 9, -1)]  # the first page: 50 of the 60
    page.locator("#next-page").click()
    page.wait_for_url(re.compile(r"cursor="))
    ids = [row.get_attribute("data-request-id") for row in page.locator("#calls-table tbody tr").all()]
    assert ids == [f"now-{n:02d}" for n in range(9, -1, -1)]

    # The explorer's own filters: failed calls of the hour, then the slowest.
    page.locator("#first-page").click()
    page.wait_for_url(lambda url: "cursor=" not in url)
    page.get_by_label("Status", exact=True).select_option("error")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"status=error"))
    ids = [row.get_attribute("data-request-id") for row in page.locator("#calls-table tbody tr").all()]
    assert ids == ["now-50", "now-40", "now-30", "now-20", "now-10", "now-00"]
    page.get_by_label("Status", exact=True).select_option("")
    page.get_by_label("Sort", exact=True).select_option("slowest")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"sort=slowest"))
    first = page.locator("#calls-table tbody tr").first
    assert first.get_attribute("data-request-id") == "now-59"
    assert first.locator('[data-col="duration"]').inner_text() == "3,059"
    assert not [text for text in errors if "Content Security Policy" in text or "Refused" in text]


def test_second_tenant_sees_only_its_calls(browser, live_server, cast):  # noqa: F811
    day, index = cast["day"], cast["hour"].hour
    page = login(browser, live_server, f"/t/globex/usage/?start={day}&end={day}&view=performance")
    wait_until(page, "document.getElementById('performance-chart')?.dataset.ready === 'true'")
    calls = page.evaluate("Chart.getChart('performance-chart').data.datasets[0].data")
    assert calls[index] == 20 and sum(calls) == 20
    assert page.locator('[data-card="latency_p50"] .stat-value').inner_text() == "9,091.2"  # 9,000 ms's bucket
    assert page.locator("#no-departures").is_visible()  # no history: nothing to depart from
    page.goto(f"{live_server.url}/t/globex/calls/?start={day}")
    ids = {row.get_attribute("data-request-id") for row in page.locator("#calls-table tbody tr").all()}
    assert ids == {f"g-{n}" for n in range(20)}
