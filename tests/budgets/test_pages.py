"""The Budgets page, GET /api/v1/budgets and manage.py create_budget / evaluate_budgets."""

import base64
import hashlib
import hmac
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from accounts import services as accounts
from usage.budgets import services
from usage.models import Budget

from ..usage.api_helpers import token_client
from .helpers import budget, spend

GOOD = {
    "name": "Monthly cap",
    "metric": "cost",
    "amount": "100",
    "currency": "usd",
    "period": "month",
    "week_start": "0",
    "thresholds": "50, 80, 100",
    "emails": "ops@acme.test",
    "webhook_url": "",
}


def url(tenant):
    return reverse("budgets:list", kwargs={"slug": tenant.slug})


def test_owner_creates_a_budget(owner_client, tenant):
    response = owner_client.post(url(tenant), GOOD)
    assert response.status_code == 302
    b = Budget.objects.get()
    assert (b.currency, b.thresholds, b.tenant, b.state) == ("USD", [50, 80, 100], tenant, "within")


def test_admin_creates_a_budget(admin_member, tenant, client):
    client.force_login(admin_member)
    assert client.post(url(tenant), GOOD).status_code == 302


def test_default_thresholds_are_50_80_100(owner_client, tenant):
    owner_client.post(url(tenant), {**GOOD, "thresholds": ""})
    assert Budget.objects.get().thresholds == [50, 80, 100]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("currency", "XYZ", "not an ISO 4217 currency code"),
        ("currency", "", "needs a currency"),
        ("amount", "-5", "greater than zero"),
        ("amount", "0", "greater than zero"),
        ("thresholds", "50, 1001", "between 1 and 1000"),
        ("thresholds", "0", "between 1 and 1000"),
        ("thresholds", "eighty", "between 1 and 1000"),
        ("thresholds", "²", "between 1 and 1000"),
        ("thresholds", "50, ¹⁰⁰", "between 1 and 1000"),
        ("thresholds", "٥٠", "between 1 and 1000"),
        ("thresholds", ", ".join(str(n) for n in range(10, 120, 10)), "At most 10 thresholds"),
        ("webhook_url", "ftp://example.test/hook", "must start with http:// or https://"),
        ("webhook_url", "javascript:alert(1)", "must start with http:// or https://"),
        ("emails", "not-an-address", "valid e-mail"),
    ],
)
def test_bad_input_is_a_form_error_and_saves_nothing(owner_client, tenant, field, value, message):
    response = owner_client.post(url(tenant), {**GOOD, field: value})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Budget.objects.exists()


def test_another_tenants_key_is_refused(owner_client, tenant, other_api_key):
    response = owner_client.post(url(tenant), {**GOOD, "api_key": other_api_key.public_id})
    assert response.status_code == 400
    assert "No such API key in this tenant" in response.content.decode()
    assert not Budget.objects.exists()


def test_a_token_budget_must_be_whole_tokens(owner_client, tenant):
    response = owner_client.post(url(tenant), {**GOOD, "metric": "tokens", "amount": "10.5"})
    assert response.status_code == 400 and not Budget.objects.exists()


def test_viewer_reads_but_cannot_write(viewer_client, tenant):
    b = budget(tenant)
    page = viewer_client.get(url(tenant))
    assert page.status_code == 200 and "read-only" in page.content.decode() and b.name in page.content.decode()
    assert viewer_client.post(url(tenant), GOOD).status_code == 403
    assert viewer_client.post(reverse("budgets:delete", kwargs={"slug": tenant.slug, "pk": b.pk})).status_code == 403
    assert Budget.objects.count() == 1


def test_page_shows_progress_and_the_forecast_method(owner_client, tenant, api_key, llm):
    b = budget(tenant, amount=1000)
    spend(tenant, api_key, llm, 800)
    html = owner_client.get(url(tenant)).content.decode()
    assert 'aria-valuenow="80.0"' in html and "state-warning" in html
    assert "average daily amount of the last 7 complete local days" in html
    assert b.name in html


def test_webhook_secret_is_shown_once_and_is_the_documented_hmac(owner_client, tenant, settings, dns):
    dns["hooks.example.test"] = "93.184.215.14"
    response = owner_client.post(url(tenant), {**GOOD, "webhook_url": "https://hooks.example.test/budget"})
    assert response.status_code == 201 and "no-cache" in response["Cache-Control"]
    b = Budget.objects.get()
    expected = hmac.new(
        settings.SECRET_HASH_KEY.encode(), f"budget-webhook:{b.webhook_salt}".encode(), hashlib.sha256
    ).hexdigest()
    standard = "whsec_" + base64.b64encode(bytes.fromhex(expected)).decode()
    assert expected in response.content.decode() and standard in response.content.decode()
    page = owner_client.get(url(tenant)).content.decode()
    assert expected not in page and standard not in page


def test_owner_edits_and_deletes_a_budget(owner_client, tenant):
    b = budget(tenant)
    edit = reverse("budgets:edit", kwargs={"slug": tenant.slug, "pk": b.pk})
    assert owner_client.get(edit).status_code == 200
    data = {**GOOD, "metric": "tokens", "amount": "5000", "thresholds": "90"}
    assert owner_client.post(edit, data).status_code == 302
    b.refresh_from_db()
    assert (b.amount, b.thresholds, b.currency) == (5000, [90], "")
    assert owner_client.post(edit, {**data, "amount": "-1"}).status_code == 400
    b.refresh_from_db()
    assert b.amount == 5000
    owner_client.post(reverse("budgets:delete", kwargs={"slug": tenant.slug, "pk": b.pk}))
    assert not Budget.objects.exists()


def test_outsider_cannot_see_or_touch_a_budget(outsider_client, tenant):
    b = budget(tenant)
    assert outsider_client.get(url(tenant)).status_code == 404
    edit = reverse("budgets:edit", kwargs={"slug": tenant.slug, "pk": b.pk})
    assert outsider_client.post(edit, GOOD).status_code == 404


def test_another_tenants_budget_id_under_my_slug_is_404(outsider_client, outsider, other_tenant, tenant):
    b = budget(tenant)
    edit = reverse("budgets:edit", kwargs={"slug": other_tenant.slug, "pk": b.pk})
    assert outsider_client.get(edit).status_code == 404


# --- API ------------------------------------------------------------------------------------------


def test_api_lists_the_tenants_budgets_with_their_state(tenant, other_tenant, api_key, llm):
    budget(tenant, amount=1000, period="day")
    budget(other_tenant, name="theirs")
    spend(tenant, api_key, llm, 1200)
    response = token_client(tenant).get("/api/v1/budgets")
    assert response.status_code == 200
    [item] = response.json()["results"]
    assert item["name"] == "monthly" and item["status"]["state"] == "exceeded"
    assert item["status"]["spent"] == 1200 and item["status"]["percent"] == "120.0"
    assert "7 complete local days" in item["status"]["projection_method"] and item["timezone"] == "UTC"


def test_api_needs_authentication(client, db):
    assert client.get("/api/v1/budgets").status_code in (401, 403)


# --- Commands ---------------------------------------------------------------------------------------


def test_ten_thresholds_are_the_most_a_budget_has(owner_client, tenant):
    ten = ", ".join(str(n) for n in range(10, 110, 10))
    assert owner_client.post(url(tenant), {**GOOD, "thresholds": ten}).status_code == 302
    assert len(Budget.objects.get().thresholds) == 10


def test_more_than_10_thresholds_are_refused_by_the_command_the_service_and_the_model(tenant):
    eleven = [f"--threshold={n}" for n in range(10, 120, 10)]
    with pytest.raises(CommandError, match="At most 10 thresholds"):
        call_command("create_budget", "--tenant=acme", "--amount=10", *eleven)
    with pytest.raises(ValidationError, match="At most 10 thresholds"):
        budget(tenant, thresholds=list(range(1, 1001)))
    b = budget(tenant)
    with pytest.raises(ValidationError, match="At most 10 thresholds"):
        services.budget_update(budget=b, data={"thresholds": list(range(1, 12))})
    b.thresholds = list(range(1, 12))
    with pytest.raises(ValidationError, match="At most 10 thresholds"):
        b.full_clean()
    b.refresh_from_db()
    assert b.thresholds == [50, 80, 100] and Budget.objects.count() == 1


def test_create_budget_command_prints_json(tenant, api_key, capsys, loopback_allowed):
    call_command(
        "create_budget",
        "--tenant=acme",
        f"--api-key={api_key.public_id}",
        "--amount=25",
        "--currency=EUR",
        "--period=week",
        "--threshold=75",
        "--threshold=100",
        "--webhook=http://127.0.0.1:9/hook",
        "--email=ops@acme.test",
        "--enforce",
        "--json",
    )
    result = json.loads(capsys.readouterr().out)
    assert result["api_key"] == api_key.public_id and result["thresholds"] == [75, 100]
    assert result["currency"] == "EUR" and result["enforce"] is True and len(result["webhook_secret"]) == 64
    assert result["standard_webhooks_secret"].startswith("whsec_")
    assert Budget.objects.get().period == "week"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--currency=XYZ"], "ISO 4217"),
        (["--amount=-1"], "greater than zero"),
        (["--threshold=2000"], "between 1 and 1000"),
        (["--webhook=file:///etc/passwd"], "http:// or https://"),
        (["--api-key=nope"], "No such API key"),
    ],
)
def test_create_budget_command_refuses_bad_input(tenant, args, message):
    base = {"--amount": "--amount=10"}
    options = [a for a in args if a.split("=")[0] in base] or [base["--amount"]]
    rest = [a for a in args if a.split("=")[0] not in base]
    with pytest.raises(CommandError, match=message):
        call_command("create_budget", "--tenant=acme", *options, *rest)
    assert not Budget.objects.exists()


def test_create_budget_for_another_tenants_key_is_refused(tenant, other_api_key):
    with pytest.raises(CommandError, match="No such API key"):
        call_command("create_budget", "--tenant=acme", "--amount=10", f"--api-key={other_api_key.public_id}")
    assert not Budget.objects.exists()


def test_evaluate_budgets_command(tenant, api_key, llm, capsys):
    b = budget(tenant, amount=100)
    spend(tenant, api_key, llm, 100)
    call_command("evaluate_budgets")
    assert "Evaluated 1 budgets" in capsys.readouterr().out
    assert b.alerts.count() == 3


def test_a_week_start_outside_monday_to_sunday_is_refused(owner_client, tenant):
    response = owner_client.post(url(tenant), {**GOOD, "period": "week", "week_start": "7"})
    assert response.status_code == 400 and not Budget.objects.exists()


def test_usage_statistics_page_shows_the_budget_line_of_the_selected_key(owner_client, tenant, api_key, llm):
    other = budget(tenant, name="staging cap", api_key=accounts.api_key_create(tenant=tenant, name="staging")[0])
    budget(tenant, name="tenant cap", amount=1000)
    budget(tenant, name="production cap", amount=500, api_key=api_key)
    spend(tenant, api_key, llm, 250)
    dashboard = reverse("usage:dashboard", kwargs={"slug": tenant.slug})
    html = owner_client.get(dashboard, {"api_key": api_key.public_id}).content.decode()
    assert "production cap" in html and "tenant cap" in html and other.name not in html
    assert 'aria-valuenow="50.0"' in html and 'aria-valuenow="25.0"' in html
    assert "production cap" not in owner_client.get(dashboard).content.decode()
