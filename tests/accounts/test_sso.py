"""Single sign-on with OpenID Connect against a real provider (django-oauth-toolkit) in its own process.

The product (Django's test client) sends the person to the provider; the person signs in there
(``requests``, a real HTTP session); the provider sends them back with a code, which the product
exchanges over HTTP for an RS256-signed ID token checked against the provider's JWKS.
"""

from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, User

from ..oidc_provider.server import running_provider

PROVIDER_PASSWORD = "provider-password-123"
PEOPLE = [
    "owner@acme.test",
    "new@acme.test",
    "newbie@elsewhere.test",
    "unverified@acme.test",
    "staff@ops.test",
]


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    users = [{"username": email, "email": email, "password": PROVIDER_PASSWORD} for email in PEOPLE]
    folder = tmp_path_factory.mktemp("provider")
    callback = "http://testserver/accounts/sso/callback/"
    with running_provider(folder, redirect_uris=[callback], users=users, unverified="unverified@acme.test") as running:
        yield running


@pytest.fixture
def sso(provider, settings):
    for name, value in provider.settings().items():
        setattr(settings, name, value)
    return provider


def sign_in(client, email, *, next_url=""):
    """The whole round trip; the product's answer to the provider's redirect back."""
    start = client.get(reverse("oidc_authentication_init") + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302
    at_provider = requests.Session()
    login_page = at_provider.get(start.url, timeout=10)  # redirected to the provider's login
    assert "Test identity provider" in login_page.text
    csrf = at_provider.cookies["provider_csrftoken"]
    back = at_provider.post(
        login_page.url,
        {"username": email, "password": PROVIDER_PASSWORD, "csrfmiddlewaretoken": csrf, "next": _next(login_page.url)},
        headers={"Referer": login_page.url},
        allow_redirects=False,
        timeout=10,
    )
    # Signed in at the provider: back to its authorize endpoint, which sends the person home.
    authorize = at_provider.get(urljoin(start.url, back.headers["Location"]), allow_redirects=False, timeout=10)
    callback = authorize.headers["Location"]
    assert callback.startswith("http://testserver/accounts/sso/callback/?")
    return client.get(callback.removeprefix("http://testserver"))


def _next(url):
    return parse_qs(urlsplit(url).query)["next"][0]


def test_a_member_signs_in_by_verified_email(sso, owner):
    client = Client()
    response = sign_in(client, "owner@acme.test")
    assert response.status_code == 302 and response.url == reverse("home")
    assert client.session["_auth_user_id"] == str(owner.pk)
    assert client.get(reverse("usage:dashboard", kwargs={"slug": "acme"})).status_code == 200
    assert client.get(reverse("usage:dashboard", kwargs={"slug": "globex"})).status_code == 404


def test_an_unverified_email_matches_nobody(sso, tenant):
    User.objects.create_user("unverified@acme.test", "pw-for-tests-123")
    tenant.sso_email_domain = "acme.test"
    tenant.save()
    client = Client()
    response = sign_in(client, "unverified@acme.test")
    assert response.status_code == 302 and response.url == reverse("login")
    assert "_auth_user_id" not in client.session
    assert User.objects.count() == 1


def test_a_new_person_of_the_tenants_domain_joins_with_the_owners_role(sso, tenant, other_tenant):
    tenant.sso_email_domain, tenant.sso_default_role = "acme.test", "admin"
    tenant.save()
    client = Client()
    sign_in(client, "new@acme.test")
    user = User.objects.get(email="new@acme.test")
    assert client.session["_auth_user_id"] == str(user.pk)
    assert not user.has_usable_password()
    assert list(Membership.objects.filter(user=user).values_list("tenant__slug", "role")) == [("acme", "admin")]
    assert client.get(reverse("api_keys", kwargs={"slug": "acme"})).status_code == 200
    assert client.get(reverse("api_keys", kwargs={"slug": "globex"})).status_code == 404


def test_a_new_person_of_another_domain_gets_no_account(sso, tenant):
    tenant.sso_email_domain = "acme.test"
    tenant.save()
    client = Client()
    response = sign_in(client, "newbie@elsewhere.test")
    assert response.url == reverse("login") and "_auth_user_id" not in client.session
    assert not User.objects.filter(email="newbie@elsewhere.test").exists()


def test_a_user_of_no_tenant_gets_no_tenant_pages(sso, tenant):
    User.objects.create_user("staff@ops.test", "pw-for-tests-123")
    client = Client()
    sign_in(client, "staff@ops.test")
    assert "_auth_user_id" in client.session
    assert "accounts/no_tenant.html" in [t.name for t in client.get(reverse("home")).templates]
    assert client.get(reverse("usage:dashboard", kwargs={"slug": "acme"})).status_code == 404


def test_a_locked_out_account_is_refused_by_single_sign_on_too(sso, owner, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        Client().post(reverse("login"), {"username": owner.email, "password": "wrong"})
    client = Client()
    response = sign_in(client, "owner@acme.test")
    # The lockout page (its wording is the lockout template's own business).
    assert response.status_code == 429
    assert settings.AXES_LOCKOUT_TEMPLATE in [t.name for t in response.templates]
    assert "_auth_user_id" not in client.session


def test_an_enrolled_user_still_types_the_code(sso, owner):
    import pyotp

    from accounts import twofactor

    device = twofactor.enrolment_start(owner)
    twofactor.enrolment_confirm(device, pyotp.TOTP(device.secret).now())
    client = Client()
    response = sign_in(client, "owner@acme.test")
    assert response.url == reverse("two_factor_verify") and "_auth_user_id" not in client.session
    device.refresh_from_db()
    code = pyotp.TOTP(device.secret).generate_otp(device.last_used_step + 1)
    assert client.post(reverse("two_factor_verify"), {"code": code}).status_code == 302
    assert client.session["_auth_user_id"] == str(owner.pk)


def test_single_sign_on_is_404_while_not_configured(db):
    assert Client().get(reverse("oidc_authentication_init")).status_code == 404
    assert Client().get(reverse("oidc_authentication_callback") + "?code=x&state=y").status_code == 404


def test_failed_sign_ins_of_strangers_never_lock_single_sign_on_for_their_address(sso, owner, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        assert sign_in(Client(), "newbie@elsewhere.test").url == reverse("login")
    client = Client()
    response = sign_in(client, "owner@acme.test")
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(owner.pk)


def test_a_new_member_of_a_tenant_that_requires_two_factor_enrols_first(sso, tenant):
    tenant.sso_email_domain, tenant.require_two_factor = "acme.test", True
    tenant.save()
    client = Client()
    sign_in(client, "new@acme.test")
    page = client.get(reverse("usage:dashboard", kwargs={"slug": "acme"}))
    assert page.status_code == 302 and page.url.startswith(reverse("two_factor_setup"))
