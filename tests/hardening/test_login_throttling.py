"""Login throttling (django-axes): repeated wrong passwords lock out one account from one client.

Failures count per (email, client address); the limit is LOGIN_FAILURE_LIMIT (10 by default).
Both password logins, the product's and the admin's, are throttled; the REST API's tokens are not.
"""

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.models import User

PASSWORD = "pw-for-tests-123"
ATTACKER = "203.0.113.7"


def _post(url, email, password, ip=ATTACKER, **extra):
    return Client(REMOTE_ADDR=ip, **extra).post(url, {"username": email, "password": password})


def _hammer(url, email, times=30, ip=ATTACKER):
    return [_post(url, email, "wrong-password", ip).status_code for _ in range(times)]


def _assert_locked_out(response):
    assert response.status_code == 429
    body = response.content.decode()
    assert "Too many failed logins" in body and "ask an operator to unlock it" in body
    assert "_auth_user_id" not in response.client.session


def test_thirty_wrong_passwords_then_the_right_one_is_refused(owner, settings):
    statuses = _hammer(reverse("login"), owner.email)
    limit = settings.AXES_FAILURE_LIMIT
    # The form's own error until the limit is reached, the lockout from then on.
    assert statuses == [200] * (limit - 1) + [429] * (30 - limit + 1)
    _assert_locked_out(_post(reverse("login"), owner.email, PASSWORD))


def test_another_account_and_another_client_are_not_locked(owner, viewer):
    _hammer(reverse("login"), owner.email)
    # The same client, another account; the same account from another client.
    assert _post(reverse("login"), viewer.email, PASSWORD).status_code == 302
    assert _post(reverse("login"), owner.email, PASSWORD, ip="198.51.100.20").status_code == 302


def test_the_admin_login_is_throttled_too(db):
    staff = User.objects.create_user("staff@acme.test", PASSWORD, is_staff=True, is_superuser=True)
    statuses = _hammer(reverse("admin:login"), staff.email)
    assert statuses[-1] == 429
    _assert_locked_out(_post(reverse("admin:login"), staff.email, PASSWORD))


def test_failures_on_either_login_count_together(owner, settings):
    half = settings.AXES_FAILURE_LIMIT // 2
    _hammer(reverse("login"), owner.email, times=half)
    _hammer(reverse("admin:login"), owner.email, times=settings.AXES_FAILURE_LIMIT - half)
    _assert_locked_out(_post(reverse("login"), owner.email, PASSWORD))


@pytest.mark.parametrize(
    "command",
    [("axes_reset",), ("axes_reset_username", "owner@acme.test"), ("axes_reset_ip", ATTACKER)],
)
def test_the_operator_commands_unlock(owner, command):
    _hammer(reverse("login"), owner.email)
    assert AccessAttempt.objects.filter(username=owner.email).exists()
    call_command(*command)
    assert _post(reverse("login"), owner.email, PASSWORD).status_code == 302


def test_a_successful_login_resets_the_count(owner, settings):
    _hammer(reverse("login"), owner.email, times=settings.AXES_FAILURE_LIMIT - 1)
    assert _post(reverse("login"), owner.email, PASSWORD).status_code == 302
    _hammer(reverse("login"), owner.email, times=settings.AXES_FAILURE_LIMIT - 1)
    assert _post(reverse("login"), owner.email, PASSWORD).status_code == 302


def test_behind_the_proxy_only_the_configured_header_names_the_client(owner, viewer, settings):
    settings.LOGIN_CLIENT_IP_HEADER = "X-Real-IP"
    url = reverse("login")
    for n in range(30):  # the proxy's address, the attacker's in X-Real-IP, a fresh X-Forwarded-For each time
        Client(REMOTE_ADDR="10.0.0.2", HTTP_X_REAL_IP=ATTACKER, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").post(
            url, {"username": owner.email, "password": "wrong-password"}
        )
    _assert_locked_out(_post(url, owner.email, PASSWORD, ip="10.0.0.2", HTTP_X_REAL_IP=ATTACKER))
    # Another client behind the same proxy is not locked out.
    assert _post(url, owner.email, PASSWORD, ip="10.0.0.2", HTTP_X_REAL_IP="198.51.100.20").status_code == 302


def test_the_api_tokens_are_not_throttled_by_logins(tenant, owner, settings):
    _hammer(reverse("login"), owner.email)
    _token, secret = services.access_token_create(tenant=tenant, name="api")
    client = Client(REMOTE_ADDR=ATTACKER)
    for _ in range(settings.AXES_FAILURE_LIMIT + 2):
        client.get("/api/v1/models", headers={"Authorization": "Bearer uat_wrong"})
    assert client.get("/api/v1/models", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
