"""Signing in, in headless Chromium: password reset by e-mail, two-factor enrolment and login, single sign-on."""

import os
import re

import pyotp
import pytest
from django.core import mail
from django.db import connections

from accounts import services, twofactor
from accounts.models import Membership, User

from ..oidc_provider.server import running_provider
from .chromium import CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "pw-for-browser-tests-123"
SCREENSHOTS = os.environ.get("SCREENSHOTS_DIR", "")
NEW_PASSWORD = "a-new-browser-passphrase-77"


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
def owner(db):
    tenant = services.tenant_create(slug="acme", name="Acme", timezone_name="UTC")
    user = User.objects.create_user("owner@acme.test", PASSWORD)
    Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.OWNER)
    return user


def _page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    return page


def _password_login(page, live_server, email, password):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def test_password_reset_from_request_to_login(browser, live_server, owner):
    page = _page(browser)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email", exact=True).fill(owner.email)
    page.get_by_role("button", name="Send the link").click()
    page.wait_for_url(re.compile(r"/accounts/password/reset/sent/$"))
    assert page.get_by_role("heading", name="Check your e-mail").is_visible()
    [message] = mail.outbox
    link = re.search(r"http://\S+/accounts/password/reset/\S+/", message.body).group(0)
    page.goto(link)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set the new password").click()
    page.wait_for_url(re.compile(r"/accounts/password/reset/complete/$"))
    page.get_by_role("link", name="Log in").click()
    page.get_by_label("Email", exact=True).fill(owner.email)
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/t/acme/"))


def test_two_factor_enrolment_then_login_with_a_code(browser, live_server, owner):
    page = _page(browser)
    refused = []
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )
    _password_login(page, live_server, owner.email, PASSWORD)
    page.wait_for_url(re.compile(r"/t/acme/"))
    page.get_by_role("link", name="Two-factor sign-in").click()
    assert page.locator("figure.qr svg").is_visible()
    # The QR code is inline SVG: the page's Content-Security-Policy holds as it is.
    assert page.locator("figure.qr svg").bounding_box()["width"] >= 150
    if SCREENSHOTS:
        page.screenshot(path=f"{SCREENSHOTS}/two-factor-setup.png", full_page=True)
    assert refused == []
    secret = page.locator("#totp-secret").inner_text()
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    assert page.get_by_role("heading", name="Two-factor sign-in is on").is_visible()
    assert page.locator("#recovery-codes li").count() == 10
    page.get_by_role("button", name="Log out").click()
    # Wherever logging out leads: away from the page of the codes.
    page.wait_for_url(lambda url: not url.endswith("/accounts/two-factor/"))

    _password_login(page, live_server, owner.email, PASSWORD)
    page.wait_for_url(re.compile(r"/accounts/login/code/$"))
    step = twofactor.device_for(owner).last_used_step + 1
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).generate_otp(step))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(re.compile(r"/t/acme/"))


def test_single_sign_on_through_the_provider(browser, live_server, owner, settings, tmp_path):
    callback = f"{live_server.url}/accounts/sso/callback/"
    users = [{"username": "owner-at-idp", "email": owner.email, "password": PASSWORD}]
    with running_provider(tmp_path, redirect_uris=[callback], users=users) as provider:
        for name, value in provider.settings().items():
            setattr(settings, name, value)
        page = _page(browser)
        page.goto(f"{live_server.url}/accounts/login/")
        if SCREENSHOTS:
            page.screenshot(path=f"{SCREENSHOTS}/login-with-sso.png")
        page.get_by_role("link", name="Sign in with single sign-on").click()
        page.wait_for_url(re.compile(re.escape(provider.url) + r"/login/"))
        page.get_by_label("Provider username").fill("owner-at-idp")
        page.get_by_label("Provider password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in at the provider").click()
        page.wait_for_url(re.compile(r"/t/acme/"))
        assert page.get_by_text(owner.email).is_visible()
