"""Every page under ``/t/<slug>/``: an outsider gets 404, an anonymous visitor the login page.

The URLs are found by walking the URLconf, so a new tenant page is checked as soon as it is
routed. A page with more URL parameters than ``slug`` needs sample values in SAMPLE_KWARGS.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts import services
from usage.models import Budget, Monitor

# URL name -> {parameter: function of the victim tenant's objects} for parameters besides ``slug``.
SAMPLE_KWARGS = {
    "api_key_revoke": {"public_id": lambda objects: objects["api_key"].public_id},
    "access_token_revoke": {"public_id": lambda objects: objects["access_token"].public_id},
    "budgets:edit": {"pk": lambda objects: objects["budget"].pk},
    "budgets:delete": {"pk": lambda objects: objects["budget"].pk},
    "budgets:test": {"pk": lambda objects: objects["budget"].pk},
    "monitors:edit": {"pk": lambda objects: objects["monitor"].pk},
    "monitors:delete": {"pk": lambda objects: objects["monitor"].pk},
}


def tenant_url_names(patterns=None, namespace=""):
    """``(name, parameters)`` of every named route that takes the tenant's ``slug``."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            if entry.app_name != "admin":
                inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                yield from tenant_url_names(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern) and entry.name and "slug" in entry.pattern.converters:
            yield namespace + entry.name, sorted(entry.pattern.converters)


TENANT_URLS = sorted(dict(tenant_url_names()).items())


def test_the_walk_finds_the_known_tenant_pages():
    names = {name for name, _params in TENANT_URLS}
    assert {
        "api_keys",
        "api_key_revoke",
        "access_tokens",
        "access_token_revoke",
        "usage:dashboard",
        "budgets:list",
        "monitors:list",
    } <= names


@pytest.fixture
def victim(tenant, owner):
    """Acme's objects that an outsider must never reach."""
    api_key, _ = services.api_key_create(tenant=tenant, name="acme-key")
    token, _ = services.access_token_create(tenant=tenant, name="acme-token")
    budget = Budget.objects.create(tenant=tenant, name="acme-budget", amount=10, currency="USD", thresholds=[100])
    monitor = Monitor.objects.create(tenant=tenant, name="acme-rule", metric="error_rate", threshold=5, channels=budget)
    return {"tenant": tenant, "api_key": api_key, "access_token": token, "budget": budget, "monitor": monitor}


def _url(name, params, objects):
    samples = SAMPLE_KWARGS.get(name, {})
    missing = [p for p in params if p != "slug" and p not in samples]
    if missing:
        pytest.fail(f"Add sample values for {missing} of {name!r} to SAMPLE_KWARGS")
    kwargs = {p: samples[p](objects) for p in params if p != "slug"}
    return reverse(name, kwargs={"slug": objects["tenant"].slug, **kwargs})


@pytest.mark.parametrize(("name", "params"), TENANT_URLS, ids=[name for name, _ in TENANT_URLS])
def test_outsider_gets_404(outsider_client, victim, name, params):
    url = _url(name, params, victim)
    statuses = {method: getattr(outsider_client, method)(url).status_code for method in ("get", "post")}
    # 405 answers before any tenant lookup (the method is not allowed on this URL), so it leaks nothing.
    assert set(statuses.values()) <= {404, 405} and 404 in statuses.values(), statuses


@pytest.mark.parametrize(("name", "params"), TENANT_URLS, ids=[name for name, _ in TENANT_URLS])
def test_member_reaches_the_same_url(owner_client, victim, name, params):
    """Guards the test above: the outsider's 404 must come from tenancy, not from a bad URL."""
    url = _url(name, params, victim)
    statuses = [owner_client.get(url).status_code, owner_client.post(url).status_code]
    assert any(status not in (404, 405) for status in statuses), statuses


@pytest.mark.parametrize(("name", "params"), TENANT_URLS, ids=[name for name, _ in TENANT_URLS])
def test_anonymous_visitor_is_sent_to_log_in(client, victim, name, params):
    url = _url(name, params, victim)
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        if response.status_code == 302:
            assert response["Location"].startswith(reverse("login") + "?next=")
        else:
            # A JSON endpoint may answer 401/403 instead of redirecting a script to a form.
            assert response.status_code in (401, 403), (method, response.status_code)


def test_unknown_tenant_is_the_same_404_as_a_foreign_one(owner_client, outsider_client, victim):
    foreign = outsider_client.get(reverse("api_keys", kwargs={"slug": victim["tenant"].slug}))
    missing = owner_client.get(reverse("api_keys", kwargs={"slug": "no-such-tenant"}))
    assert foreign.status_code == missing.status_code == 404
    assert b"Acme" not in foreign.content


def test_outsider_cannot_revoke_a_key_through_their_own_tenant(outsider_client, outsider, other_tenant, victim):
    url = reverse("api_key_revoke", kwargs={"slug": other_tenant.slug, "public_id": victim["api_key"].public_id})
    assert outsider_client.post(url).status_code == 404
    victim["api_key"].refresh_from_db()
    assert victim["api_key"].revoked_at is None


# --- URLs without a slug: the tenant comes from the credential ----------------------------------

# Read with a tenant's access token: another tenant's token never sees this tenant's numbers,
# and naming this tenant with ``tenant=`` is a 404.
TOKEN_URLS = {
    "openai_usage_completions": {"start_time": "1773100800", "end_time": "1773187200"},
    "openai_costs": {"start_time": "1773100800", "end_time": "1773187200"},
}


@pytest.fixture
def victim_usage(victim):
    import datetime as dt

    from tests.usage.factories import make_calls
    from usage.models import Model

    model = Model.objects.create(name="public/victim-model")
    at = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)
    make_calls(victim["tenant"], [{"api_key": victim["api_key"], "model": model, "occurred_at": at, "input_tokens": 7}])
    return victim


@pytest.mark.parametrize("name", sorted(TOKEN_URLS))
def test_token_urls_answer_only_the_tokens_tenant(client, victim_usage, other_tenant, name):
    _token, own_secret = services.access_token_create(tenant=victim_usage["tenant"], name="own")
    _token, foreign_secret = services.access_token_create(tenant=other_tenant, name="foreign")
    url, params = reverse(name), TOKEN_URLS[name]
    own = client.get(url, params, headers={"Authorization": f"Bearer {own_secret}"})
    assert own.status_code == 200 and any(bucket["results"] for bucket in own.json()["data"])
    foreign = client.get(url, params, headers={"Authorization": f"Bearer {foreign_secret}"})
    assert foreign.status_code == 200 and all(bucket["results"] == [] for bucket in foreign.json()["data"])
    assert victim_usage["api_key"].public_id.encode() not in foreign.content
    named = client.get(url, {**params, "tenant": "acme"}, headers={"Authorization": f"Bearer {foreign_secret}"})
    assert named.status_code == 404
    assert client.get(url, params).status_code == 401


def test_token_urls_list_every_slugless_tenant_read():
    """A new route under /api/openai/ must be listed above."""
    names = {
        entry.name
        for resolver in get_resolver().url_patterns
        if isinstance(resolver, URLResolver) and str(resolver.pattern).startswith("api/openai/")
        for entry in resolver.url_patterns
    }
    assert names == set(TOKEN_URLS)


# Written with the gateway's service token: a tenant's access token (any tenant's) is refused,
# and the tenant of each call is the one of its API key, never a parameter.
SERVICE_URLS = ["api_ingest_calls", "api_keys_verify", "api_otlp_traces", "api_litellm_logs"]


@pytest.mark.parametrize("name", SERVICE_URLS)
def test_service_urls_refuse_access_tokens_and_sessions(client, owner_client, victim, name):
    _token, secret = services.access_token_create(tenant=victim["tenant"], name="reader")
    url = reverse(name)
    assert client.post(url, "{}", content_type="application/json").status_code == 401
    assert owner_client.post(url, "{}", content_type="application/json").status_code == 401
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.post(url, "{}", content_type="application/json", headers=headers).status_code == 401
