"""The Monitors page in headless Chromium: an owner creates a 15-minute rule, sees it fire on real
calls and edits it; a viewer sees the state and events but no form."""

import datetime as dt
import re

import pytest
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from accounts import services
from accounts.models import Membership, User
from usage.ingestion.services import call_records_ingest
from usage.models import Model, Monitor
from usage.monitors.services import monitors_evaluate_all

from ..budgets.helpers import budget
from .chromium import CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "pw-for-browser-tests-123"


@pytest.fixture
def browser(chromium_path, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        connections.close_all()


@pytest.fixture
def cast(db):
    tenant = services.tenant_create(slug="acme", name="Acme", timezone_name="Asia/Kolkata")
    for role in ("owner", "viewer"):
        user = User.objects.create_user(f"{role}@acme.test", PASSWORD)
        Membership.objects.create(user=user, tenant=tenant, role=role)
    key = services.api_key_create(tenant=tenant, name="production")[0]
    Model.objects.create(name="public/deepseek-r1")
    return {"tenant": tenant, "key": key, "budget": budget(tenant, name="ops budget")}


def login(browser, live_server, email):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    url = reverse("monitors:list", kwargs={"slug": "acme"})
    page.goto(f"{live_server.url}/accounts/login/?next={url}")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/t/acme/monitors/$"))
    return page


def failures(key, count, at, status):
    return [
        {
            "request_id": f"{status}-{n}",
            "api_key": key.public_id,
            "model": "public/deepseek-r1",
            "occurred_at": (at + dt.timedelta(seconds=n)).isoformat(),
            "input_tokens": 10,
            "output_tokens": 0,
            "status": status,
        }
        for n in range(count)
    ]


def test_owner_creates_a_rule_sees_it_fire_and_a_viewer_reads_it(browser, live_server, cast):
    page = login(browser, live_server, "owner@acme.test")
    assert page.get_by_role("link", name="Monitors").get_attribute("aria-current") == "page"
    assert page.get_by_text("No monitors yet.").is_visible()
    # A bad window first: the form says why and nothing is created.
    page.get_by_label("Name", exact=True).fill("r1 errors")
    page.get_by_label("Metric", exact=True).select_option("error_rate")
    page.get_by_label("Threshold", exact=True).fill("5")
    page.get_by_label("Window (minutes)", exact=True).fill("3")
    page.get_by_label("At least (calls)", exact=True).fill("10")
    page.get_by_label("API key", exact=True).select_option(cast["key"].public_id)
    page.get_by_role("button", name="Create monitor").click()
    assert "The window is 5 to 1440 minutes" in page.locator(".errors").first.inner_text()
    assert not Monitor.objects.exists()
    page.get_by_label("Window (minutes)", exact=True).fill("15")
    page.get_by_role("button", name="Create monitor").click()
    page.wait_for_url(re.compile(r"/t/acme/monitors/$"))
    row = page.locator("tr[data-monitor]")
    assert "over 15 min" in row.inner_text() and row.locator(".monitor-state").inner_text() == "ok"
    assert row.locator(".evaluated").inner_text() == "not yet"
    # 4 failures in 20 calls of the last minutes: 20% > 5%; the beat's evaluation fires it.
    now = timezone.now()
    call_records_ingest(items=failures(cast["key"], 4, now - dt.timedelta(minutes=5), "error"))
    call_records_ingest(items=failures(cast["key"], 16, now - dt.timedelta(minutes=4), "ok"))
    assert monitors_evaluate_all() == 1
    page.reload()
    assert row.locator(".monitor-state").inner_text() == "firing"
    assert row.locator(".monitor-value").inner_text() == "20.00%"
    assert "fired at 20.00% on 20 calls" in row.inner_text()
    # Edit: a higher threshold.
    row.get_by_role("link", name="Edit").click()
    page.get_by_label("Threshold", exact=True).fill("50")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/t/acme/monitors/$"))
    assert "> 50 over 15 min" in page.locator("tr[data-monitor]").inner_text()
    assert str(Monitor.objects.get().threshold) == "50.0000"
    page.close()
    viewer = login(browser, live_server, "viewer@acme.test")
    text = viewer.locator("main").inner_text()
    assert "r1 errors" in text and "firing" in text and "read-only access" in text
    assert viewer.get_by_role("button", name="Create monitor").count() == 0
    assert viewer.get_by_role("button", name="Delete").count() == 0
