"""Every URL pattern x every method x five identities of another tenant, aimed at a victim's objects.

The patterns are read from the URLconf when the test runs, so a new route without an entry in
ROUTES (or, in the admin, a model without a victim row) fails the test. The identities belong
to the attacker tenant Globex: its owner, admin and viewer (browser sessions), a Globex access
token and the platform's service token. The victim is Acme. Each pattern is requested with
GET, POST, PUT, PATCH and DELETE in two variants: (a) the victim's slug and object ids in the
path; (b) the attacker's own slug with the victim's object ids in the path, the victim's API key,
model and tenant in the query string, and in the body (a form for POST, JSON otherwise).

The rule asserted for every request:
- never a 5xx, and the body never holds a victim name, id or figure that the request did not send;
- a foreign object or tenant in the path of a page is a 404 for a session of another tenant
  (405 where the route does not take the method, 403 for a viewer's write), and for an identity
  the page is not for (a token: no session) the redirect to the login page (401/403 from a JSON
  endpoint, 405 for a method the route does not take);
- the REST API (access token or session) answers a foreign tenant, key or model with 400 or 404
  and a method it does not take with 405; a service token there is a 401;
- the gateway's endpoints (service token) answer 405 to a method but POST, 401 to any other
  identity, and never a 2xx that carries victim data;
- the admin is for staff only: every admin URL redirects these identities to the admin login;
- and afterwards the victim's keys, tokens, budgets, members and calls are exactly as before.
"""

import datetime as dt
import json
import re
import time
import uuid

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts import services
from accounts.models import AccessToken, ApiKey, Membership, ServiceToken, Tenant, TwoFactorDevice, User
from tests.usage.factories import make_calls, price
from usage.models import (
    AlertDelivery,
    Budget,
    BudgetAlert,
    CallRecord,
    Model,
    ModelAlias,
    Monitor,
    MonitorEvent,
    PriceChange,
    UnpricedModelAlert,
)
from usage.rollups import recompute as rollups

METHODS = ("get", "post", "put", "patch", "delete")
SESSIONS = ("owner", "admin", "viewer")
IDENTITIES = (*SESSIONS, "access_token", "service_token")
LOGIN = "/accounts/login/"

# What each named route outside the admin is, and its path parameters besides ``slug``.
# page: a tenant's browser page (session); api: the REST API (access token or session);
# api_write: the REST API with writes (the monitors); service: the gateway's endpoints (service
# token); public: anyone.
API_KEY = {"public_id": lambda victim: victim["api_key"].public_id}
BUDGET = {"pk": lambda victim: victim["budget"].pk}
MONITOR = {"pk": lambda victim: victim["monitor"].pk}
ROUTES = {
    "home": ("public", {}),
    "login": ("public", {}),
    "logout": ("public", {}),
    "two_factor_verify": ("public", {}),
    "two_factor_setup": ("public", {}),
    "recovery_codes_renew": ("public", {}),
    "password_reset": ("public", {}),
    "password_reset_done": ("public", {}),
    "password_reset_confirm": ("public", {"uidb64": lambda victim: "MQ", "token": lambda victim: "set-password"}),
    "password_reset_complete": ("public", {}),
    "oidc_authentication_init": ("public", {}),
    "oidc_authentication_callback": ("public", {}),
    "tenant_sign_in": ("page", {}),
    "usage:favicon": ("public", {}),
    "api_schema": ("public", {}),
    "api_docs": ("public", {}),
    "healthz": ("public", {}),
    "readyz": ("public", {}),
    "metrics": ("public", {}),  # a service token or an allowed network; never a tenant's data
    "api_keys": ("page", {}),
    "api_key_revoke": ("page", API_KEY),
    "access_tokens": ("page", {}),
    "access_token_revoke": ("page", {"public_id": lambda victim: victim["access_token"].public_id}),
    "usage:dashboard": ("page", {}),
    "usage:data": ("page", {}),
    "usage:calls": ("page", {}),
    "usage:chart_trend": ("page", {}),
    "usage:chart_distribution": ("page", {}),
    "usage_export": ("page", {}),
    "usage_export_focus": ("page", {}),
    "reports:prices": ("page", {}),
    "reports:monthly": ("page", {}),
    "reports:monthly_csv": ("page", {}),
    "reports:operations": ("page", {}),
    "budgets:list": ("page", {}),
    "budgets:edit": ("page", BUDGET),
    "budgets:delete": ("page", BUDGET),
    "budgets:test": ("page", BUDGET),
    "monitors:list": ("page", {}),
    "monitors:edit": ("page", MONITOR),
    "monitors:delete": ("page", MONITOR),
    "api_usage_summary": ("api", {}),
    "api_usage_timeseries": ("api", {}),
    "api_usage_breakdown": ("api", {}),
    "api_usage_performance": ("api", {}),
    "api_usage_export": ("api", {}),
    "api_exports_focus": ("api", {}),
    "api_api_keys": ("api", {}),
    "api_models": ("api", {}),
    "api_calls": ("api", {}),
    "api_reports_monthly": ("api", {}),
    "api_budgets": ("api", {}),
    "api_monitors": ("api_write", {}),
    "api_monitor": ("api_write", MONITOR),
    "api_monitor_events": ("api_write", MONITOR),
    "openai_usage_completions": ("api", {}),
    "openai_costs": ("api", {}),
    "api_ingest_calls": ("service", {}),
    "api_keys_verify": ("service", {}),
    "api_otlp_traces": ("service", {}),
    "api_litellm_logs": ("service", {}),
}

# Figures of the victim's calls: distinctive, so they cannot appear by chance.
VICTIM_INPUT, VICTIM_OUTPUT = 7_341_937, 2_918_263


def url_patterns(patterns=None, prefix="", namespace=""):
    """``(name, route, pattern)`` of every pattern of the URLconf; unnamed ones by route."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from url_patterns(entry.url_patterns, route, inner)
        elif isinstance(entry, URLPattern):
            yield (namespace + entry.name if entry.name else route), route, entry


@pytest.fixture
def victim(tenant, owner, api_key, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"access_token": "100000/min"}}
    Tenant.objects.filter(pk=tenant.pk).update(name="Acme Victim Holdings")
    tenant.refresh_from_db()
    model = Model.objects.create(name="acme-private/secret-llm", tenant=tenant)
    ModelAlias.objects.create(name="acme-secret-alias", model=model)
    price(model, "2026-01-01", "0.5", "2", tenant=tenant)
    token, _ = services.access_token_create(tenant=tenant, name="acme-finance-token")
    budget = Budget.objects.create(tenant=tenant, name="acme-q4-budget", amount=77, currency="USD", thresholds=[100])
    at = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)
    make_calls(
        tenant,
        [
            {
                "api_key": api_key,
                "model": model,
                "occurred_at": at,
                "input_tokens": VICTIM_INPUT,
                "output_tokens": VICTIM_OUTPUT,
                "request_id": "acme-req-5f1c",
            }
        ],
    )
    rollups.usage_rollup_dirty(tenant=tenant)
    # And a dirty day beside the rolled-up one (read from the ledger until recomputed).
    make_calls(
        tenant,
        [{"api_key": api_key, "model": model, "occurred_at": at - dt.timedelta(days=1), "input_tokens": 1}],
        dirty=True,
    )
    alert = BudgetAlert.objects.create(
        budget=budget, period_start=at.date(), kind="threshold", threshold=100, spent=1, limit=77, projected=1
    )
    AlertDelivery.objects.create(budget=budget, alert=alert, channel="email", delivery_id=uuid.uuid4(), log=[])
    monitor = Monitor.objects.create(
        tenant=tenant, name="acme-r1-errors", metric="error_rate", threshold=5, channels=budget
    )
    MonitorEvent.objects.create(monitor=monitor, kind="fired", value=61.25, calls=8191, window_start=at)
    PriceChange.objects.create(model=model, tenant=tenant, action="added", actor=owner.email, source="admin")
    UnpricedModelAlert.objects.create(tenant=tenant, model=model, first_day=at.date(), calls=1, tokens=1)
    Group.objects.create(name="acme-auditors")
    login = {"username": owner.email, "ip_address": "192.0.2.1", "user_agent": "t", "path_info": LOGIN}
    AccessAttempt.objects.create(**login, get_data="", post_data="", failures_since_start=1)
    AccessFailureLog.objects.create(**login)
    AccessLog.objects.create(**login)
    TwoFactorDevice.objects.create(user=owner, secret="JBSWY3DPEHPK3PXP", confirmed_at=dt.datetime.now(dt.UTC))
    return {
        "tenant": tenant,
        "owner": owner,
        "api_key": api_key,
        "access_token": token,
        "model": model,
        "budget": budget,
        "monitor": monitor,
    }


@pytest.fixture
def attacker(other_tenant, llm):
    key, _ = services.api_key_create(tenant=other_tenant, name="globex-key")
    make_calls(
        other_tenant,
        [
            {
                "api_key": key,
                "model": llm,
                "occurred_at": dt.datetime.now(dt.UTC) - dt.timedelta(hours=2),
                "input_tokens": 5,
            }
        ],
    )
    clients = {}
    for role in SESSIONS:
        user = User.objects.create_user(f"{role}@globex.test", "pw-for-tests-123")
        Membership.objects.create(user=user, tenant=other_tenant, role=role)
        clients[role] = Client()
        clients[role].force_login(user)
    _token, secret = services.access_token_create(tenant=other_tenant, name="globex-token")
    clients["access_token"] = Client(headers={"Authorization": f"Bearer {secret}"})
    _token, secret = services.service_token_create(name="gateway")
    clients["service_token"] = Client(headers={"Authorization": f"Bearer {secret}"})
    return {
        "tenant": other_tenant,
        "clients": clients,
        "users": {r: User.objects.get(email=f"{r}@globex.test") for r in SESSIONS},
    }


def victim_markers(victim):
    """Strings of the victim's data; none may appear in an answer unless the request sent it."""
    figures = [VICTIM_INPUT, VICTIM_OUTPUT, VICTIM_INPUT + VICTIM_OUTPUT]
    return {
        victim["tenant"].name,
        victim["tenant"].slug,
        victim["owner"].email,
        victim["api_key"].name,
        victim["api_key"].public_id,
        victim["access_token"].name,
        victim["access_token"].public_id,
        victim["model"].name,
        victim["budget"].name,
        victim["monitor"].name,
        "acme-req-5f1c",
        *(str(n) for n in figures),
        *(f"{n:,}" for n in figures),
    }


def victim_snapshot(victim):
    tenant = victim["tenant"]
    return {
        "keys": sorted(ApiKey.objects.filter(tenant=tenant).values_list("public_id", "name", "revoked_at")),
        "tokens": sorted(AccessToken.objects.filter(tenant=tenant).values_list("public_id", "name", "revoked_at")),
        "budgets": sorted(Budget.objects.filter(tenant=tenant).values_list("pk", "name", "amount")),
        "monitors": sorted(
            Monitor.objects.filter(tenant=tenant).values_list("pk", "name", "threshold", "api_key", "model", "channels")
        ),
        "members": sorted(Membership.objects.filter(tenant=tenant).values_list("user_id", "role")),
        "calls": sorted(CallRecord.objects.filter(tenant=tenant).values_list("request_id", "input_tokens")),
        "tenant": Tenant.objects.filter(pk=tenant.pk)
        .values_list("name", "slug", "timezone", "require_two_factor", "sso_email_domain", "sso_default_role")
        .get(),
        "two_factor": sorted(TwoFactorDevice.objects.filter(user__memberships__tenant=tenant).values_list("user_id")),
    }


def admin_object(model, victim):
    """A victim row of an admin model, for ``object_id``; None if the walk has none."""
    if model is Tenant:
        return victim["tenant"]
    if model is User:
        return victim["owner"]
    if model is ServiceToken:
        return ServiceToken.objects.first()
    if model is TwoFactorDevice:
        return TwoFactorDevice.objects.filter(user=victim["owner"]).first()
    for field in ("tenant", "budget__tenant", "api_key__tenant"):
        if field.split("__")[0] in {f.name for f in model._meta.get_fields()}:
            return model._default_manager.filter(**{field: victim["tenant"]}).first()
    return model._default_manager.first()  # platform-wide rows (groups, login attempts)


def admin_kwargs(name, route, pattern, victim):
    kwargs = {}
    for param in pattern.pattern.converters or pattern.pattern.regex.groupindex:
        if param in ("object_id", "id"):
            model = Budget if name == "admin:view_on_site" else admin_model(route)
            row = admin_object(model, victim) if model else None
            if row is None:
                pytest.fail(f"Give the URL walk a victim row of {model} for {name!r} (admin_object)")
            kwargs[param] = str(row.pk)
        elif param == "app_label":
            kwargs[param] = "accounts"
        elif param == "content_type_id":
            kwargs[param] = ContentType.objects.get_for_model(Budget).pk
        elif param == "url":
            kwargs[param] = f"{victim['tenant'].slug}/"
        else:
            pytest.fail(f"Give the URL walk a sample value for {param!r} of {name!r}")
    return kwargs


def admin_model(route):
    """``admin/usage/budget/<path:object_id>/change/`` -> Budget."""
    for model in admin.site._registry:
        if route.startswith(f"admin/{model._meta.app_label}/{model._meta.model_name}/"):
            return model
    return None


def admin_path(name, route, pattern, victim):
    kwargs = admin_kwargs(name, route, pattern, victim)
    if pattern.name:
        return reverse(name, kwargs=kwargs)
    if "url" in kwargs:  # the catch-all
        return "/admin/" + kwargs["url"]
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(kwargs[m.group(1)]), route)


def request_paths(name, route, pattern, victim, attacker):
    """The variants (a) and (b) of one pattern: ``(path, query, foreign_in_path)``."""
    query = {
        "api_key": victim["api_key"].public_id,
        "model": victim["model"].name,
        "tenant": victim["tenant"].slug,
        "api_key_ids": victim["api_key"].public_id,
        "models": victim["model"].name,
        "start_time": "1767225600",
        "budget": victim["budget"].pk,
    }
    if name.startswith("admin:") or route.startswith("admin/"):
        # One variant: the admin answers these identities before it reads a path or a parameter.
        return [(admin_path(name, route, pattern, victim), {}, True)]
    if name not in ROUTES:
        pytest.fail(f"Add {name!r} ({route}) to ROUTES of the URL walk: what it is and its sample parameters")
    _kind, samples = ROUTES[name]
    params = set(pattern.pattern.converters) - {"slug"}
    if params - set(samples):
        pytest.fail(f"Add sample values for {sorted(params - set(samples))} of {name!r} to ROUTES")
    objects = {param: samples[param](victim) for param in params}
    if "slug" not in pattern.pattern.converters:
        return [
            (reverse(name, kwargs=objects), {}, bool(objects)),
            (reverse(name, kwargs=objects), query, bool(objects)),
        ]
    return [
        (reverse(name, kwargs={"slug": victim["tenant"].slug, **objects}), {}, True),
        (reverse(name, kwargs={"slug": attacker["tenant"].slug, **objects}), query, bool(objects)),
    ]


def bodies(victim):
    form = {
        "username": victim["owner"].email,
        "password": "not-the-password",
        "name": "walk-created",
        "api_key": victim["api_key"].public_id,
        "model": victim["model"].name,
        "tenant": victim["tenant"].slug,
        "public_id": victim["api_key"].public_id,
        "amount": "5",
        "currency": "USD",
        "thresholds": "50",
        "webhook_url": "http://127.0.0.1:9/",
    }
    call = {
        "request_id": "walk-1",
        "api_key": victim["api_key"].public_id,
        "model": victim["model"].name,
        "occurred_at": "not-a-time",  # rejected: the walk must not add to the victim's data
        "input_tokens": 1,
        "output_tokens": 1,
    }
    data = {"calls": [call], "key": f"sk_{victim['api_key'].public_id}_wrong", **form}
    return form, json.dumps(data)


def expected(kind, identity, method, foreign_in_path, query):  # noqa: C901  # one decision table, read top down
    """The statuses the rule above allows (None: any status below 500)."""
    session = identity in SESSIONS
    if kind == "admin":
        return {302}
    if kind == "public":
        return None
    if kind == "page":
        if not session:
            return {302, 401, 403, 405}
        if foreign_in_path:
            return {403, 404, 405} if identity == "viewer" else {404, 405}
        return None
    if kind == "api":
        if identity == "service_token":
            return {401}
        if method != "get":
            return {405}
        return {400, 404} if query else None
    if kind == "api_write":  # the monitors API: writes too, for the tenant's owners and admins
        if identity == "service_token":
            return {401}
        if method == "get":
            return {400, 404} if query or foreign_in_path else None
        # A foreign monitor is a 404 before any role check; a write to the list is refused.
        return {404, 405} if foreign_in_path else {400, 403, 404, 405}
    if kind == "service":
        if method != "post":
            return {405}
        return None if identity == "service_token" else {401}
    raise AssertionError(kind)


def route_kind(name, route):
    if name.startswith("admin:") or route.startswith("admin/"):
        return "admin" if name not in ("admin:login", "admin:logout", "admin_login") else "public"
    return ROUTES[name][0]


def test_every_url_pattern_every_method_every_identity(victim, attacker):
    started = time.monotonic()
    before = victim_snapshot(victim)
    markers = victim_markers(victim)
    form, json_body = bodies(victim)
    patterns = list(url_patterns())
    failures, requests, statuses, seconds = [], 0, {}, {}
    for name, route, pattern in patterns:
        kind_started = time.monotonic()
        kind = route_kind(name, route)
        for path, query, foreign_in_path in request_paths(name, route, pattern, victim, attacker):
            if path is None:
                continue
            url = path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
            for identity in IDENTITIES:
                client = attacker["clients"][identity]
                for method in METHODS:
                    if method == "post" and not path.startswith("/api/"):
                        response = client.post(url, form)
                        sent = url + json.dumps(form)
                    elif method == "get":
                        response = client.get(url)
                        sent = url
                    else:
                        response = getattr(client, method)(url, json_body, content_type="application/json")
                        sent = url + json_body
                    requests += 1
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    problem = check(response, kind, identity, method, foreign_in_path, query, markers, sent)
                    if problem:
                        failures.append(f"{method.upper()} {url} as {identity}: {problem}")
                    if identity in SESSIONS and "logout" in name and "_auth_user_id" not in client.session:
                        client.force_login(attacker["users"][identity])  # after a logout
        seconds[kind] = seconds.get(kind, 0) + time.monotonic() - kind_started
    after = victim_snapshot(victim)
    elapsed = time.monotonic() - started
    by_kind = {kind: round(s, 1) for kind, s in seconds.items()}
    print(
        f"\nURL walk: {requests} requests, {len(patterns)} patterns, {len(IDENTITIES)} identities, "
        f"{len(METHODS)} methods, {len(failures)} failures, {elapsed:.1f} s; "
        f"statuses {dict(sorted(statuses.items()))}; seconds by kind {by_kind}"
    )
    assert not failures, "\n".join(failures[:40])
    assert before == after, "the walk changed the victim's data"


def check(response, kind, identity, method, foreign_in_path, query, markers, sent):
    """What is wrong with one answer, or None."""
    if response.status_code >= 500:
        return f"status {response.status_code}"
    body = b"".join(response.streaming_content) if response.streaming else response.content
    text = body.decode("utf-8", "replace") + " ".join(f"{k}: {v}" for k, v in response.items())
    leaked = sorted(marker for marker in markers if marker in text and marker not in sent)
    if leaked:
        return f"victim data in the answer: {leaked}"
    allowed = expected(kind, identity, method, foreign_in_path, query)
    if allowed is not None and response.status_code not in allowed:
        return f"status {response.status_code}, expected one of {sorted(allowed)}"
    if response.status_code == 302:
        location = response["Location"]
        if kind == "admin" and not location.startswith("/admin/login/"):
            return f"admin redirect to {location}"
        if kind == "page" and not location.startswith(LOGIN + "?next="):
            return f"page redirect to {location}"
    return None
