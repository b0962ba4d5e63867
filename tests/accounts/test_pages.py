"""The accounts pages: roles on the key and token pages, home, login and the tenant switcher."""

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.authentication import TokenUser
from accounts.context_processors import tenancy
from accounts.forms import EmailAuthenticationForm
from accounts.models import AccessToken, ApiKey, Membership

PAGES = {"api_keys": ApiKey, "access_tokens": AccessToken}


@pytest.fixture
def admin_client(admin_member):
    client = Client()
    client.force_login(admin_member)
    return client


def _create(client, page, **data):
    return client.post(reverse(page, kwargs={"slug": "acme"}), {"name": "ci", "expires_at": "", **data})


@pytest.mark.parametrize("page", PAGES)
def test_viewer_sees_the_page_without_the_create_form(viewer_client, api_key, page):
    response = viewer_client.get(reverse(page, kwargs={"slug": "acme"}))
    assert response.status_code == 200
    assert b'name="name"' not in response.content
    assert b"read-only access" in response.content


@pytest.mark.parametrize("page", PAGES)
def test_viewer_cannot_create(viewer_client, page):
    response = _create(viewer_client, page)
    assert response.status_code == 403
    assert not PAGES[page].objects.exists()


def test_viewer_cannot_revoke(viewer_client, api_key):
    url = reverse("api_key_revoke", kwargs={"slug": "acme", "public_id": api_key.public_id})
    assert viewer_client.post(url).status_code == 403
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


@pytest.mark.parametrize("role_client", ["owner_client", "admin_client"])
@pytest.mark.parametrize("page", PAGES)
def test_owner_and_admin_create_and_see_the_secret_once(request, role_client, page):
    client = request.getfixturevalue(role_client)
    response = _create(client, page)
    assert response.status_code == 201
    credential = PAGES[page].objects.get(name="ci")
    secret = response.context["secret"]
    assert PAGES[page].find_by_secret(secret) == credential
    assert secret.encode() in response.content
    assert "no-store" in response["Cache-Control"]
    # The list never shows it again.
    assert secret.encode() not in client.get(reverse(page, kwargs={"slug": "acme"})).content


@pytest.mark.parametrize("role_client", ["owner_client", "admin_client"])
def test_owner_and_admin_revoke(request, role_client, api_key):
    client = request.getfixturevalue(role_client)
    url = reverse("api_key_revoke", kwargs={"slug": "acme", "public_id": api_key.public_id})
    response = client.post(url)
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.status == "revoked"


def test_revoke_needs_post(owner_client, api_key):
    url = reverse("api_key_revoke", kwargs={"slug": "acme", "public_id": api_key.public_id})
    assert owner_client.get(url).status_code == 405


def test_revoking_an_unknown_key_is_404(owner_client):
    url = reverse("api_key_revoke", kwargs={"slug": "acme", "public_id": "nosuchkey123"})
    assert owner_client.post(url).status_code == 404


def test_a_taken_name_is_a_form_error(owner_client, api_key):
    response = _create(owner_client, "api_keys", name=api_key.name.upper())
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert ApiKey.objects.count() == 1


def test_an_empty_form_is_a_form_error(owner_client):
    response = owner_client.post(reverse("api_keys", kwargs={"slug": "acme"}), {})
    assert response.status_code == 400
    assert not ApiKey.objects.exists()


def test_an_expiry_in_the_past_is_a_form_error(owner_client):
    response = _create(owner_client, "api_keys", expires_at="2001-01-01T00:00")
    assert response.status_code == 400
    assert "must be in the future" in response.content.decode()


def test_the_expiry_is_read_in_the_tenants_time_zone(db):
    user = services.user_get_or_create(email="boss@kolkata.test")[0]
    services.tenant_create(slug="kol", name="Kolkata", timezone_name="Asia/Kolkata", owner_email=user.email)
    client = Client()
    client.force_login(user)
    client.post(reverse("api_keys", kwargs={"slug": "kol"}), {"name": "ci", "expires_at": "2040-01-01T10:00"})
    # 10:00 in Kolkata (+05:30) is 04:30 UTC.
    assert ApiKey.objects.get(name="ci").expires_at == dt.datetime(2040, 1, 1, 4, 30, tzinfo=dt.UTC)


def test_the_page_marks_its_menu_entry(owner_client):
    response = owner_client.get(reverse("api_keys", kwargs={"slug": "acme"}))
    assert b'href="/t/acme/keys/" aria-current="page"' in response.content


def test_home_sends_a_member_to_their_first_tenants_usage(owner_client):
    response = owner_client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("usage:dashboard", kwargs={"slug": "acme"})


def test_home_explains_when_the_user_has_no_tenant(db, django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user("lonely@example.test"))
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert b"No tenant yet" in response.content


def test_anonymous_home_goes_to_log_in(client, db):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_log_in_with_email_and_out(client, owner):
    response = client.post(reverse("login"), {"username": "owner@acme.test", "password": "pw-for-tests-123"})
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("home")).status_code == 302


def test_a_wrong_password_is_refused_with_a_message(client, owner):
    response = client.post(reverse("login"), {"username": "owner@acme.test", "password": "wrong"})
    assert response.status_code == 200
    assert b'role="alert"' in response.content


def test_tenant_switcher_shows_for_a_member_of_several_tenants(owner_client, owner, other_tenant):
    Membership.objects.create(user=owner, tenant=other_tenant, role=Membership.Role.VIEWER)
    content = owner_client.get(reverse("api_keys", kwargs={"slug": "acme"})).content.decode()
    assert 'class="tenant-switcher"' in content
    assert reverse("usage:dashboard", kwargs={"slug": "globex"}) in content
    assert "Globex" in content
    # The viewed tenant is marked, and each entry names the user's role there.
    assert f'<a href="{reverse("usage:dashboard", kwargs={"slug": "acme"})}" aria-current="true">' in content
    assert (
        f'<a href="{reverse("usage:dashboard", kwargs={"slug": "globex"})}" >Globex</a> <small>Viewer</small>'
        in content
    )


def test_no_tenant_switcher_for_a_single_tenant(owner_client):
    content = owner_client.get(reverse("api_keys", kwargs={"slug": "acme"})).content.decode()
    assert 'class="tenant-switcher"' not in content


def test_context_processor_ignores_api_token_principals(rf, tenant):
    token, _ = services.access_token_create(tenant=tenant, name="t")
    request = rf.get("/")
    request.user = TokenUser(token)
    assert tenancy(request) == {}


def test_email_login_form_ignores_the_case_of_the_email(rf, owner):
    form = EmailAuthenticationForm(rf.post("/"), data={"username": " Owner@ACME.test", "password": "pw-for-tests-123"})
    assert form.is_valid(), form.errors
    assert form.get_user() == owner


def test_an_expiry_near_the_end_of_the_calendar_is_a_form_error_not_a_500(owner_client):
    response = _create(owner_client, "api_keys", expires_at="9999-12-31T23:00")
    assert response.status_code == 400
    assert "Choose an expiry before" in response.content.decode()


def test_favicon_is_served(client, settings):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")


def test_access_tokens_page_does_not_reuse_api_key_wording(owner_client, tenant):
    services.access_token_create(tenant=tenant, name="ci")
    page = owner_client.get(reverse("access_tokens", kwargs={"slug": tenant.slug})).content.decode()
    assert "keeps its name in usage reports" not in page and "Calls with it" not in page
    assert "can no longer read this tenant" in page
    services.api_key_create(tenant=tenant, name="prod")
    page = owner_client.get(reverse("api_keys", kwargs={"slug": tenant.slug})).content.decode()
    assert "A revoked API key keeps its name in usage reports." in page
