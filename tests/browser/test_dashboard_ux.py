"""The Usage Statistics page as a demanding user tries it: export, keyboard, honest charts, many models."""

import datetime as dt
import itertools
import json
import re

import pytest
from django.utils import timezone

from accounts import services
from accounts.models import Membership, User
from usage.dashboard.colors import MIN_DISTANCE, distance
from usage.models import Model

from ..usage.factories import make_calls
from .chromium import wait_until
from .test_dashboard_browser import browser, cast, login, wait_rendered  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_export_downloads_the_api_csv_of_the_current_filters(browser, live_server, cast):  # noqa: F811
    production = cast["keys"][0]
    page = login(browser, live_server, cast)
    page.get_by_label("API Key", exact=True).select_option(production.public_id)
    page.wait_for_url(re.compile(rf"api_key={production.public_id}"))
    wait_rendered(page)
    with page.expect_download() as info:
        page.get_by_role("link", name="Export CSV").click()
    download = info.value
    with open(download.path(), "rb") as handle:
        downloaded = handle.read()
    api = page.request.get(
        f"{live_server.url}/api/v1/usage/export.csv?tenant=acme&preset=last_2_weeks&api_key={production.public_id}"
    )
    assert api.ok
    assert downloaded == api.body()
    assert downloaded.count(b"\r\n") > 10
    assert production.public_id.encode() in downloaded and cast["keys"][1].public_id.encode() not in downloaded
    assert download.suggested_filename.startswith("usage-acme-")


def test_arrow_keys_in_a_filter_do_not_navigate_until_apply(browser, live_server, cast):  # noqa: F811
    page = login(browser, live_server, cast)
    start_url = page.url
    page.evaluate("window.notReloaded = true")
    key = page.get_by_label("API Key", exact=True)
    key.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.wait_for_timeout(400)
    assert page.evaluate("window.notReloaded") is True
    assert page.url == start_url
    chosen = key.input_value()
    assert chosen
    assert page.locator("#apply-hint").is_visible()
    page.get_by_role("button", name="Apply", exact=True).click()
    page.wait_for_url(re.compile(rf"api_key={chosen}"))
    wait_rendered(page)

    # Leaving the control applies the choice too; a model chosen with the keyboard the same.
    model = page.get_by_label("Model", exact=True)
    model.focus()
    page.keyboard.press("ArrowDown")
    page.wait_for_timeout(300)
    assert "model=" not in page.url
    page.keyboard.press("Tab")
    page.wait_for_url(re.compile(r"model=public"))
    wait_rendered(page)


def test_today_draws_no_future_and_dashes_the_hour_in_progress(browser, live_server, cast):  # noqa: F811
    now = timezone.now()
    make_calls(
        cast["tenant"],
        [
            {
                "api_key": cast["keys"][0],
                "model": cast["models"][0],
                "occurred_at": now,
                "input_tokens": 100,
                "output_tokens": 10,
            }
        ],
    )
    page = login(browser, live_server, cast)
    page.goto(page.url.split("?")[0] + "?preset=today")
    wait_rendered(page)
    trend = page.evaluate(
        """(() => { const c = Chart.getChart('trend-chart'); const t = JSON.parse(
             document.getElementById('dashboard-data').textContent).trend;
           return {data: c.data.datasets.map((s) => s.data), labels: c.data.labels.length,
                   current: t.current_index, future: t.future_index}; })()"""
    )
    assert trend["current"] is not None
    for values in trend["data"]:
        drawn = [index for index, value in enumerate(values) if value is not None]
        assert drawn == list(range(trend["current"] + 1))
    if trend["future"] is not None:
        assert trend["future"] == trend["current"] + 1 and trend["labels"] > trend["future"]
    dash = page.evaluate(
        f"Chart.getChart('trend-chart').data.datasets[0].segment.borderDash({{p1DataIndex: {trend['current']}}})"
    )
    assert dash == [6, 4]
    if trend["current"] > 0:  # in the day's first hour the first segment is the one in progress
        assert (
            page.evaluate("Chart.getChart('trend-chart').data.datasets[0].segment.borderDash({p1DataIndex: 0})") is None
        )
    assert "still in progress" in page.locator("#trend-note").inner_text()
    assert "until" in page.locator("#compare-note").inner_text()


@pytest.fixture
def many_models(cast):  # noqa: F811
    """Twenty models on the cast's tenant (deepseek-r1 with its own purple) over the last days."""
    Model.objects.filter(name="public/deepseek-r1").update(color="#7c3aed")
    names = [f"public/model-{index:02d}" for index in range(15)]
    models = cast["models"] + [Model.objects.create(name=name) for name in names]
    now = timezone.now()
    specs = [
        {
            "api_key": cast["keys"][index % 2],
            "model": model,
            "occurred_at": now - dt.timedelta(days=day, hours=3),
            "input_tokens": 5000 - index * 200 + day,
            "output_tokens": 100 + index,
        }
        for index, model in enumerate(models)
        for day in range(1, 6)
    ]
    make_calls(cast["tenant"], specs)
    return models


def _drawn(page):
    return page.evaluate(
        """(() => { const c = Chart.getChart('trend-chart');
           return {type: c.config.type, stacked: Boolean(c.options.scales.y.stacked),
                   sets: c.data.datasets.map((s) => ({label: s.label, data: s.data, color: s.borderColor})),
                   doughnut: Chart.getChart('distribution-chart').data.datasets[0].data,
                   slices: Chart.getChart('distribution-chart').data.labels}; })()"""
    )


def test_many_models_top_n_plus_other_sum_to_the_total(browser, live_server, cast, many_models):  # noqa: F811
    page = login(browser, live_server, cast, viewport={"width": 1440, "height": 1000})
    server = json.loads(page.locator("#dashboard-data").text_content())
    assert len(server["trend"]["datasets"]) == 20
    total = int(page.locator('[data-card="total_tokens"] .stat-value').get_attribute("data-value"))
    drawn = _drawn(page)
    assert [s["label"] for s in drawn["sets"]][-1] == "Other (12 models)" and len(drawn["sets"]) == 9
    for index in range(len(server["trend"]["labels"])):
        shown = sum(s["data"][index] or 0 for s in drawn["sets"])
        assert shown == sum(s["total"][index] for s in server["trend"]["datasets"])
    assert sum(s["data"][i] or 0 for s in drawn["sets"] for i in range(len(s["data"]))) == total
    assert sum(drawn["doughnut"]) == total and drawn["slices"][-1] == "Other (12 models)"

    # Colours: the operator's purple stays, and no two of the twenty read as one.
    colors = {s["label"]: s["borderColor"] for s in server["trend"]["datasets"]}
    assert colors["public/deepseek-r1"] == "#7c3aed"
    assert min(distance(a, b) for a, b in itertools.combinations(colors.values(), 2)) >= MIN_DISTANCE

    page.get_by_label("Models", exact=True).select_option("all")
    assert len(_drawn(page)["sets"]) == 20
    page.get_by_role("button", name="Stacked bars").click()
    drawn = _drawn(page)
    assert drawn["type"] == "bar" and drawn["stacked"] and len(drawn["sets"]) == 20
    page.get_by_label("Models", exact=True).select_option("5")
    drawn = _drawn(page)
    assert drawn["type"] == "bar" and len(drawn["sets"]) == 6 and len(drawn["doughnut"]) == 6
    assert sum(drawn["doughnut"]) == total

    # The data table shows what the chart draws.
    page.get_by_text("Show the trend as a table").click()
    headers = page.locator("#trend-table thead th").all_text_contents()
    assert headers[1:] == [s["label"] for s in drawn["sets"]]


def test_refresh_after_logout_says_the_session_ended(browser, live_server, cast):  # noqa: F811
    page = login(browser, live_server, cast)
    page.context.clear_cookies()
    page.get_by_role("button", name="Refresh").click()
    wait_until(page, "document.getElementById('dashboard').dataset.session === 'ended'")
    assert page.locator("#updated-at").inner_text().startswith("Your session has ended.")
    link = page.get_by_role("link", name="Log in again")
    assert "/accounts/login/?next=/t/acme/usage/" in link.get_attribute("href")
    link.click()
    page.wait_for_url(re.compile(r"/accounts/login/"))


def test_favicon_and_tenant_switcher_role_on_one_line(browser, live_server, cast):  # noqa: F811
    other = services.tenant_create(slug="globex", name="Globex", timezone_name="UTC")
    Membership.objects.create(user=User.objects.get(email="member@acme.test"), tenant=other, role="admin")
    page = login(browser, live_server, cast)
    assert page.request.get(f"{live_server.url}/favicon.ico").ok
    page.locator(".tenant-switcher summary").click()
    item = page.locator(".tenant-switcher li").first
    name, role = item.locator("a").bounding_box(), item.locator("small").bounding_box()
    assert abs(name["y"] - role["y"]) < name["height"]  # the role sits beside the name


def test_auto_refresh_is_off_until_chosen(browser, live_server, cast):  # noqa: F811
    page = login(browser, live_server, cast)
    box = page.get_by_label("Auto-refresh")
    assert not box.is_checked()
    updated = page.locator("#updated-at time").get_attribute("datetime")
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_timeout(500)
    assert page.locator("#updated-at time").get_attribute("datetime") == updated
    box.check()
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    wait_until(page, f"document.querySelector('#updated-at time')?.getAttribute('datetime') !== '{updated}'")


def test_distribution_table_fits_a_phone(browser, live_server, cast):  # noqa: F811
    page = login(browser, live_server, cast, viewport={"width": 390, "height": 844})
    fits = page.evaluate(
        "(() => { const t = document.querySelector('.distribution-table');"
        " return t.scrollWidth <= t.clientWidth + 1; })()"
    )
    assert fits
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    name = page.locator(".distribution-table .model-name").first
    assert name.bounding_box()["height"] < 24  # one line: the name does not break
