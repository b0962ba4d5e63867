"""Password reset by e-mail: Django's views and tokens, the product's pages, no account enumeration."""

import re

import pytest
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import User

NEW_PASSWORD = "a-brand-new-passphrase-42"


def _ask(email, ip="198.51.100.4"):
    return Client(REMOTE_ADDR=ip).post(reverse("password_reset"), {"email": email}, follow=True)


def _link(message):
    return re.search(r"http://testserver(/accounts/password/reset/\S+/)", message.body).group(1)


def test_a_known_and_an_unknown_address_get_the_same_page(owner):
    known, unknown = _ask(owner.email), _ask("nobody@acme.test")
    assert known.redirect_chain == unknown.redirect_chain == [(reverse("password_reset_done"), 302)]
    assert known.status_code == unknown.status_code == 200
    assert known.content == unknown.content
    assert "If an account here has that address" in known.content.decode()
    # Only the account's owner got a message.
    assert [m.to for m in mail.outbox] == [[owner.email]]


def test_the_address_matches_whatever_its_case(owner):
    _ask(owner.email.upper())
    assert [m.to for m in mail.outbox] == [[owner.email]]


def test_the_link_sets_a_new_password_once(owner):
    _ask(owner.email)
    client = Client()
    form_page = client.get(_link(mail.outbox[0]), follow=True)
    assert "Choose a new password" in form_page.content.decode()
    done = client.post(form_page.request["PATH_INFO"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done.url == reverse("password_reset_complete")
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD)
    login = Client().post(reverse("login"), {"username": owner.email, "password": NEW_PASSWORD})
    assert login.status_code == 302 and login.url == reverse("home")
    # The same link a second time: the token is bound to the old password hash.
    again = Client().get(_link(mail.outbox[0]), follow=True)
    assert "This link does not work any more" in again.content.decode()


def test_a_link_older_than_the_timeout_does_not_work(owner, settings, monkeypatch):
    settings.PASSWORD_RESET_TIMEOUT = 600
    _ask(owner.email)
    issued = PasswordResetTokenGenerator()._now()
    monkeypatch.setattr(PasswordResetTokenGenerator, "_now", lambda self: issued.replace(microsecond=0) + _seconds(601))
    page = Client().get(_link(mail.outbox[0]), follow=True)
    assert "This link does not work any more" in page.content.decode()
    assert 'name="new_password1"' not in page.content.decode()


def _seconds(n):
    import datetime as dt

    return dt.timedelta(seconds=n)


def test_requests_past_the_hourly_limit_send_nothing_and_look_the_same(owner, settings):
    settings.PASSWORD_RESET_MAX_PER_HOUR = 3
    pages = [_ask(owner.email).content for _ in range(5)]
    assert len(mail.outbox) == 3
    assert len(set(pages)) == 1


def test_a_mismatched_new_password_is_a_form_error_and_changes_nothing(owner):
    _ask(owner.email)
    client = Client()
    form_page = client.get(_link(mail.outbox[0]), follow=True)
    response = client.post(form_page.request["PATH_INFO"], {"new_password1": NEW_PASSWORD, "new_password2": "other"})
    assert response.status_code == 200 and "didn’t match" in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password("pw-for-tests-123")


@pytest.mark.parametrize("email", ["not-an-address", ""])
def test_a_malformed_address_is_a_form_error(email, db):
    response = Client().post(reverse("password_reset"), {"email": email})
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert mail.outbox == []
    assert not User.objects.exists()


@pytest.fixture
def dead_broker(monkeypatch):
    """Celery publishing to a Redis port where nothing listens (a broker that is down)."""
    import socket

    from usageproject.celery import app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    # Publishing connects to broker_write_url (which defaults to the configured broker's).
    monkeypatch.setattr(app.conf, "broker_write_url", f"redis://127.0.0.1:{port}/0")
    # Drop the pools bound to the configured broker; they are made again from broker_url.
    monkeypatch.setattr(app, "_pool", None)
    monkeypatch.setattr(app.amqp, "_producer_pool", None)
    yield
    app._pool = None
    app.amqp._producer_pool = None


def test_with_the_broker_down_the_mail_still_goes_and_the_page_is_the_same(owner, dead_broker):
    response = _ask(owner.email)
    assert response.redirect_chain == [(reverse("password_reset_done"), 302)]
    assert [m.to for m in mail.outbox] == [[owner.email]]
