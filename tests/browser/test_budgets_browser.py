"""The Budgets page in headless Chromium: create a budget, see its bar and forecast, hit a form error."""

import re

import pytest
from django.db import connections
from django.urls import reverse

from accounts import services
from accounts.models import Membership, User
from usage.models import Budget, Model

from ..budgets.helpers import spend
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
    owner = User.objects.create_user("owner@acme.test", PASSWORD)
    Membership.objects.create(user=owner, tenant=tenant, role=Membership.Role.OWNER)
    viewer = User.objects.create_user("viewer@acme.test", PASSWORD)
    Membership.objects.create(user=viewer, tenant=tenant, role=Membership.Role.VIEWER)
    key = services.api_key_create(tenant=tenant, name="production")[0]
    spend(tenant, key, Model.objects.create(name="public/deepseek-r1"), 850)
    return {"tenant": tenant, "key": key}


def login(browser, live_server, email):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    url = reverse("budgets:list", kwargs={"slug": "acme"})
    page.goto(f"{live_server.url}/accounts/login/?next={url}")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/t/acme/budgets/"))
    return page


def test_owner_creates_a_token_budget_and_sees_its_progress(browser, live_server, cast):
    page = login(browser, live_server, "owner@acme.test")
    assert page.get_by_text("No budgets yet.").is_visible()
    page.get_by_label("Name", exact=True).fill("Tokens this month")
    page.get_by_label("Metric", exact=True).select_option("tokens")
    page.get_by_label("Amount", exact=True).fill("1000")
    page.get_by_role("button", name="Create budget").click()
    page.wait_for_url(re.compile(r"/t/acme/budgets/$"))
    row = page.locator("tr[data-budget]")
    assert "Tokens this month" in row.inner_text()
    bar = row.get_by_role("progressbar")
    assert bar.get_attribute("aria-valuenow") == "85.0"
    assert row.locator(".budget-state").inner_text() == "warning"
    assert "average daily amount of the last 7 complete local days" in page.locator("caption").inner_text()
    assert Budget.objects.get().thresholds == [50, 80, 100]


def test_a_bad_currency_shows_a_form_error_and_saves_nothing(browser, live_server, cast):
    page = login(browser, live_server, "owner@acme.test")
    page.get_by_label("Name", exact=True).fill("Cost")
    page.get_by_label("Amount", exact=True).fill("10")
    page.get_by_label("Currency", exact=True).fill("XYZ")
    page.get_by_role("button", name="Create budget").click()
    assert page.get_by_role("alert").filter(has_text="not an ISO 4217 currency code").is_visible()
    assert not Budget.objects.exists()


def test_a_viewer_reads_without_a_form(browser, live_server, cast):
    Budget.objects.create(tenant=cast["tenant"], name="Cap", metric="tokens", amount=1000, thresholds=[100])
    page = login(browser, live_server, "viewer@acme.test")
    assert page.get_by_text("Cap").first.is_visible()
    assert page.get_by_role("button", name="Create budget").count() == 0
    assert page.get_by_text("read-only access").is_visible()
