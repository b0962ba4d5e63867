"""The Usage Statistics page in headless Chromium: filters, metric switch, refresh after ingestion."""

import datetime as dt
import json
import os
import re
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from accounts import services
from accounts.models import Membership, User
from usage import localtime
from usage.localtime import tenant_today
from usage.models import Model, ModelPrice
from usage.reporting.money import money_text
from usage.rollups import recompute as rollups

from ..usage.factories import make_calls
from .chromium import CHROMIUM_ARGS, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-browser-tests-123"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
MODELS = ["public/deepseek-r1", "public/qwen3-235b", "public/llama-3.3-70b", "public/glm-4.5", "public/kimi-k2"]


@pytest.fixture
def cast(db):
    """A tenant with two keys, five models and two weeks of calls, and a member who can log in."""
    tenant = services.tenant_create(slug="acme", name="Acme", timezone_name="Europe/Berlin")
    user = User.objects.create_user("member@acme.test", PASSWORD)
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.VIEWER)
    keys = [services.api_key_create(tenant=tenant, name=name)[0] for name in ("production", "staging")]
    models = [Model.objects.create(name=name) for name in MODELS]
    now = timezone.now()
    specs = []
    for day in range(1, 13):
        for rank, model in enumerate(models):
            for hour, key in ((2, keys[0]), (7, keys[1])):
                tokens = (5 - rank) * 400 + day * 37 * (rank + 1) + hour * 11
                occurred = now - dt.timedelta(days=day, hours=hour)
                specs.append(
                    {
                        "api_key": key,
                        "model": model,
                        "occurred_at": occurred,
                        "input_tokens": tokens,
                        "output_tokens": tokens // 4,
                    }
                )
    make_calls(tenant, specs)
    rollups.usage_rollup_dirty(tenant=tenant)
    return {"tenant": tenant, "keys": keys, "models": models, "specs": specs}


def expected(cast, first, last, key=None, model=None):
    """Ground truth from the specs: (total, input, output, calls) on local days first..last."""
    tenant, rows = cast["tenant"], []
    for spec in cast["specs"]:
        day = localtime.local_day(tenant, spec["occurred_at"])
        if first <= day <= last and key in (None, spec["api_key"]) and model in (None, spec["model"]):
            rows.append(spec)
    input_tokens, output_tokens = sum(r["input_tokens"] for r in rows), sum(r["output_tokens"] for r in rows)
    return {
        "total_tokens": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "calls": len(rows),
    }


def cards(page):
    return {
        key: int(page.locator(f'[data-card="{key}"] .stat-value').get_attribute("data-value"))
        for key in ("total_tokens", "input_tokens", "output_tokens", "calls")
    }


@pytest.fixture
def browser(chromium_path, monkeypatch):
    # Playwright's sync API keeps an event loop in this thread; the ORM calls of the test are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    # Inside Playwright's sync API the ORM gets a database connection of its own, which nothing
    # else closes: close it here, or the test database cannot be dropped at the end of the run.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        connections.close_all()


def login(browser, live_server, cast, viewport=None):
    page = browser.new_page(viewport=viewport or {"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    url = reverse("usage:dashboard", kwargs={"slug": cast["tenant"].slug})
    page.goto(f"{live_server.url}/accounts/login/?next={url}")
    page.get_by_label("Email", exact=True).fill("member@acme.test")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/t/acme/usage/"))
    wait_rendered(page)
    return page


def wait_rendered(page):
    wait_until(page, "document.getElementById('dashboard') && document.getElementById('dashboard').dataset.rendered")


def trend_data(page):
    return page.evaluate("Chart.getChart('trend-chart').data.datasets.map((set) => [set.label, set.data])")


def test_filters_change_the_numbers_and_the_url(browser, live_server, cast):
    tenant, (production, _staging), models = cast["tenant"], cast["keys"], cast["models"]
    today = tenant_today(tenant)
    page = login(browser, live_server, cast)
    assert page.locator('#range-panel input[name="preset"]:checked').input_value() == "last_2_weeks"
    assert cards(page) == expected(cast, today - dt.timedelta(days=13), today)

    page.get_by_label("API Key", exact=True).select_option(production.public_id)
    page.wait_for_url(re.compile(rf"api_key={production.public_id}"))
    wait_rendered(page)
    assert cards(page) == expected(cast, today - dt.timedelta(days=13), today, key=production)

    page.get_by_label("Model", exact=True).select_option(models[1].name)
    page.wait_for_url(re.compile(r"model=public%2Fqwen3-235b"))
    wait_rendered(page)
    assert cards(page) == expected(cast, today - dt.timedelta(days=13), today, key=production, model=models[1])
    assert [label for label, _data in trend_data(page)] == [models[1].name]

    page.get_by_role("button", name="Time range").click()
    page.get_by_label("Last 7 days", exact=True).check()
    page.wait_for_url(re.compile(r"preset=last_7_days"))
    wait_rendered(page)
    assert cards(page) == expected(cast, today - dt.timedelta(days=6), today, key=production, model=models[1])

    page.get_by_role("button", name="Time range").click()
    page.get_by_label("Custom", exact=True).check()
    first, last = today - dt.timedelta(days=9), today - dt.timedelta(days=8)
    page.get_by_label("From", exact=True).fill(first.isoformat())
    page.get_by_label("To", exact=True).fill(last.isoformat())
    page.get_by_role("button", name="Apply range").click()
    page.wait_for_url(re.compile(rf"start={first.isoformat()}&end={last.isoformat()}"))
    wait_rendered(page)
    assert cards(page) == expected(cast, first, last, key=production, model=models[1])
    assert page.locator("#trend-bucket").inner_text() == "by hour"

    # A shared link opens the same view.
    shared = browser.new_page()
    shared.context.add_cookies(page.context.cookies())
    shared.goto(page.url)
    wait_rendered(shared)
    assert cards(shared) == cards(page)


def test_metric_switch_redraws_without_reload(browser, live_server, cast):
    page = login(browser, live_server, cast)
    page.evaluate("window.notReloaded = true")
    datasets = {label: None for label, _ in trend_data(page)}
    assert list(datasets) == MODELS  # largest first, one line per model
    totals = dict(trend_data(page))
    for name, key in (("Input", "input"), ("Output", "output"), ("Total", "total")):
        button = page.get_by_role("button", name=name, exact=True)
        button.click()
        assert button.get_attribute("aria-pressed") == "true"
        drawn = dict(trend_data(page))
        stored = page.evaluate(
            f"Object.fromEntries(Chart.getChart('trend-chart').data.datasets.map((s) => [s.label, s.{key}]))"
        )
        assert drawn == stored
    assert dict(trend_data(page)) == totals
    assert page.evaluate("window.notReloaded") is True


def _ingest(live_server, tenant, key, model, tokens):
    """New calls through the ingestion API when it exists, else straight into the ledger."""
    now = timezone.now()
    calls = [
        {
            "request_id": f"browser-{index}",
            "api_key": key.public_id,
            "model": model.name,
            "occurred_at": now.isoformat(),
            "input_tokens": tokens,
            "output_tokens": tokens // 2,
        }
        for index in range(3)
    ]
    try:
        url = live_server.url + reverse("api_ingest_calls")
    except NoReverseMatch:
        make_calls(tenant, [{**call, "api_key": key, "model": model, "occurred_at": now} for call in calls])
        return calls
    _token, secret = services.service_token_create(name="browser-test-gateway")
    request = urllib.request.Request(
        url,
        data=json.dumps({"calls": calls}).encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        answer = json.loads(response.read())
    assert "rejected" not in answer or not answer["rejected"], answer
    return calls


def test_refresh_shows_newly_ingested_calls(browser, live_server, cast):
    tenant, key, model = cast["tenant"], cast["keys"][0], cast["models"][2]
    page = login(browser, live_server, cast)
    before = cards(page)
    updated = page.locator("#updated-at time").get_attribute("datetime")
    page.evaluate("window.notReloaded = true")

    _ingest(live_server, tenant, key, model, 1000)
    page.get_by_role("button", name="Refresh").click()
    wait_until(page, f"document.querySelector('#updated-at time')?.getAttribute('datetime') !== '{updated}'")

    assert cards(page) == {
        "total_tokens": before["total_tokens"] + 3 * 1500,
        "input_tokens": before["input_tokens"] + 3000,
        "output_tokens": before["output_tokens"] + 1500,
        "calls": before["calls"] + 3,
    }
    assert page.get_by_role("button", name="Refresh").is_enabled()
    assert page.locator("#dashboard").get_attribute("aria-busy") == "false"
    assert page.evaluate("window.notReloaded") is True


def test_distribution_click_filters_by_model(browser, live_server, cast):
    page = login(browser, live_server, cast)
    page.locator(".distribution-table").get_by_role("link", name=MODELS[3]).click()
    page.wait_for_url(re.compile(r"model=public%2Fglm-4.5"))
    wait_rendered(page)
    assert page.get_by_label("Model", exact=True).input_value() == MODELS[3]


def test_empty_period_and_phone_layout(browser, live_server, cast):
    page = login(browser, live_server, cast, viewport={"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.goto(page.url.split("?")[0] + "?preset=custom&start=2020-01-01&end=2020-01-31")
    wait_rendered(page)
    assert page.get_by_text("No usage in this period").first.is_visible()
    assert not page.locator("#trend-chart").is_visible()


def test_screenshot(browser, live_server, cast, tmp_path):
    """The default view with five models; UPDATE_SCREENSHOT=1 writes README's docs/screenshot.png."""
    page = login(browser, live_server, cast, viewport={"width": 1280, "height": 1000})
    path = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "dashboard.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def test_cost_metric_draws_each_models_daily_cost(browser, live_server, cast):
    for model in cast["models"]:
        ModelPrice.objects.create(
            model=model, input_per_1k="0.50", output_per_1k="1.50", effective_from=dt.date(2020, 1, 1)
        )
    page = login(browser, live_server, cast)
    button = page.get_by_role("button", name="Cost", exact=True)
    button.click()
    assert button.get_attribute("aria-pressed") == "true"
    drawn = dict(trend_data(page))
    stored = page.evaluate(
        "Object.fromEntries(Chart.getChart('trend-chart').data.datasets.map((s) => [s.label, s.cost.map(Number)]))"
    )
    assert drawn == stored and any(value > 0 for values in drawn.values() for value in values)
    card = page.locator("#cost-card").inner_text()
    total = sum(
        sum(Decimal(v) for v in values)
        for values in page.evaluate("Chart.getChart('trend-chart').data.datasets.map((s) => s.cost)")
    )
    assert f"{total:,.2f}" in card
    # The data table under the chart shows each exact amount rounded by the server's rule.
    exact = page.evaluate("Chart.getChart('trend-chart').data.datasets.map((s) => s.cost)")
    cells = page.evaluate(
        "[...document.querySelectorAll('#trend-table tbody tr')].map("
        "(tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent))"
    )
    assert (
        cells and [[money_text(Decimal(column[row]), "USD") for column in exact] for row in range(len(cells))] == cells
    )


def test_the_scripts_money_rule_is_the_servers(browser, live_server, cast):
    page = login(browser, live_server, cast)
    amounts = ["0.3164304", "0.0139", "0.013935", "0", "0.005", "0.09996", "1234567.125", "1234567.135", "12.3"]
    amounts += ["0.00000000001", "0.0112500", "0.10125"]
    script = Path(settings.BASE_DIR, "static/js/dashboard.js").read_text()
    source = script[script.index("  function moneyText") : script.index("  // With many models")]
    shown = page.evaluate(f"(() => {{ {source}; return {amounts!r}.map((a) => moneyText(a, 2)); }})()")
    assert shown == [money_text(Decimal(amount), "USD") for amount in amounts]
    assert page.evaluate(f"(() => {{ {source}; return moneyText('3.14159', 0); }})()") == "3.14"
