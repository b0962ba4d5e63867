"""Content-Security-Policy, Permissions-Policy and Cache-Control on every HTML page and API read,
and templates that the policy can serve: no inline script code, no event handler attributes."""

import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts import services
from usage.models import Budget, Monitor

from ..usage.factories import make_calls, utc

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _directives(header):
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def assert_policy(response):
    csp = response.headers.get("Content-Security-Policy")
    assert csp, f"{response.request['PATH_INFO']}: no Content-Security-Policy"
    directives = _directives(csp)
    scripts = directives.get("script-src", directives.get("default-src"))
    assert scripts == ["'self'"], csp
    assert not {"'unsafe-inline'", "'unsafe-eval'"} & set(directives.get("style-src", [])), csp
    assert directives["object-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"]
    assert "camera=()" in response.headers.get("Permissions-Policy", ""), response.request["PATH_INFO"]


def assert_private(response):
    cache = response.headers.get("Cache-Control", "")
    assert "private" in cache and "no-store" in cache and "public" not in cache, (response.request["PATH_INFO"], cache)


def _tenant_page_names(resolver=None, prefix=""):
    """Every URL name of a page under /t/<slug>/ that takes only the slug (plus <pk> for budgets and monitors)."""
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            namespace = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
            yield from _tenant_page_names(entry, namespace)
        elif isinstance(entry, URLPattern) and entry.name and str(entry.pattern).startswith("t/<slug:slug>/"):
            yield prefix + entry.name, str(entry.pattern)


@pytest.fixture
def site(tenant, owner, api_key, llm):
    make_calls(tenant, [{"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 9), "input_tokens": 5}])
    budget = Budget.objects.create(tenant=tenant, name="Monthly", amount=100, currency="USD", period="month")
    monitor = Monitor.objects.create(tenant=tenant, name="errors", metric="error_rate", threshold=5, channels=budget)
    return {"budget": budget, "monitor": monitor}


def test_every_tenant_page_has_the_policy_and_is_private(owner_client, tenant, site):
    seen = []
    for name, pattern in _tenant_page_names():
        kwargs = {"slug": tenant.slug}
        if "<int:pk>" in pattern:
            kwargs["pk"] = site["monitor" if name.startswith("monitors:") else "budget"].pk
        if "<str:public_id>" in pattern:
            continue  # POST-only actions (revoke), walked below
        response = owner_client.get(reverse(name, kwargs=kwargs))
        assert response.status_code in (200, 302, 405), (name, response.status_code)
        assert_private(response)
        if response.headers["Content-Type"].startswith("text/html"):
            assert_policy(response)
            seen.append(name)
    # The walk really met the product's pages.
    pages = ("usage:dashboard", "reports:operations", "budgets:list", "budgets:edit", "api_keys", "access_tokens")
    for name in (*pages, "monitors:list", "monitors:edit"):
        assert name in seen


def test_accounts_admin_and_docs_pages_have_the_policy(owner_client, admin_client):
    anonymous = Client()
    for response in (
        anonymous.get(reverse("login")),
        anonymous.get(reverse("admin:login")),
        owner_client.get(reverse("home")),
        admin_client.get(reverse("admin:index")),
        admin_client.get(reverse("admin:usage_model_changelist")),
        owner_client.get(reverse("api_docs")),
    ):
        assert response.status_code in (200, 302), response.request["PATH_INFO"]
        assert_policy(response)
    assert_private(admin_client.get(reverse("admin:usage_model_changelist")))


def test_api_reads_with_a_token_or_a_session_are_private(owner_client, tenant):
    _token, secret = services.access_token_create(tenant=tenant, name="bi")
    token_client = Client(headers={"Authorization": f"Bearer {secret}"})
    for client in (token_client, owner_client):
        for name in ("api_usage_summary", "api_models", "api_usage_export"):
            response = client.get(reverse(name), {"tenant": tenant.slug})
            assert response.status_code == 200, name
            assert_private(response)
            assert "camera=()" in response.headers["Permissions-Policy"]


def test_anonymous_pages_stay_cacheable_by_their_own_rules(client):
    response = client.get(reverse("api_schema"))
    assert "private" not in response.headers.get("Cache-Control", "")


# --- Templates the policy can serve ---------------------------------------------------------

SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)
HANDLER = re.compile(r"""<[a-z][^>]*\son[a-z]+\s*=""", re.I | re.S)
STYLE_ATTRIBUTE = re.compile(r"""<[a-z][^>]*\sstyle\s*=""", re.I | re.S)


def _templates():
    paths = sorted(TEMPLATES.rglob("*.html"))
    assert len(paths) > 20
    return paths


def test_templates_have_no_inline_script_code():
    for path in _templates():
        for attributes, body in SCRIPT.findall(path.read_text()):
            assert "src=" in attributes and not body.strip(), f"{path}: inline <script> code"


def test_templates_have_no_event_handler_or_style_attributes():
    for path in _templates():
        text = path.read_text()
        assert not HANDLER.search(text), f"{path}: an on*= event handler attribute"
        assert not STYLE_ATTRIBUTE.search(text), f"{path}: an inline style attribute"


def test_the_scan_finds_what_it_forbids():
    assert HANDLER.search('<form method="post" onsubmit="return confirm()">')
    assert HANDLER.search('<button type="button"\n  onclick="x()">')
    assert not HANDLER.search('<button data-confirm="on=off">')
    assert SCRIPT.findall("<script>alert(1)</script>") == [("", "alert(1)")]
    assert STYLE_ATTRIBUTE.search('<span class="a" style="width: 3px">')
