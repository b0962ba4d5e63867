"""Every admin page loads for a superuser with data present; big tables are never counted."""

import datetime as dt
import re
import uuid

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import services
from accounts.models import ApiKey, RecoveryCode, TwoFactorDevice
from usage import admin as usage_admin
from usage.models import (
    AlertDelivery,
    Budget,
    BudgetAlert,
    CallRecord,
    DirtyDay,
    ModelAlias,
    ModelPrice,
    UnpricedModelAlert,
    UsageDaily,
    UsageDailyModel,
    UsageHourly,
)
from usage.pricebook.services import Actor, price_save

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)
IDS = [model._meta.label for model in REGISTERED]
AT = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
NEW_PASSWORD = {"usable_password": "true", "password1": "Tr1cky-pass", "password2": "Tr1cky-pass"}


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The default hasher takes ~0.3 s per user on purpose; these tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root@example.test", "pw-for-tests-123")


@pytest.fixture
def superuser_client(superuser):
    client = Client()
    client.force_login(superuser)
    return client


def _rollup(model, tenant, api_key, llm, **bucket):
    sums = {"calls": 2, "input_tokens": 20, "output_tokens": 10}
    return model.objects.create(tenant=tenant, api_key=api_key, model=llm, **sums, **bucket)


@pytest.fixture
def data(tenant, owner, api_key, llm):
    """At least one row of every registered model, so pages render real rows."""
    Group.objects.create(name="auditors")
    services.access_token_create(tenant=tenant, name="reports")
    services.service_token_create(name="gateway")
    ModelAlias.objects.create(name="deepseek-r1", model=llm)
    price = ModelPrice(model=llm, input_per_1k="0.001", output_per_1k="0.002", effective_from=AT.date())
    price_save(price=price, actor=Actor(source="test"))  # and its PriceChange
    UnpricedModelAlert.objects.create(tenant=tenant, model=llm, first_day=AT.date(), calls=1, tokens=15)
    for n in range(30):
        CallRecord.objects.create(
            tenant=tenant,
            api_key=api_key,
            model=llm,
            occurred_at=AT,
            request_id=f"r-{n}",
            input_tokens=10,
            output_tokens=5,
        )
    _rollup(UsageHourly, tenant, api_key, llm, hour=AT)
    _rollup(UsageDaily, tenant, api_key, llm, day=AT.date())
    UsageDailyModel.objects.create(tenant=tenant, model=llm, day=AT.date(), calls=2, input_tokens=20, output_tokens=10)
    DirtyDay.objects.create(tenant=tenant, day=AT.date(), token="t")
    budget = Budget.objects.create(tenant=tenant, name="cap", amount=10, currency="USD", thresholds=[100])
    alert = BudgetAlert.objects.create(
        budget=budget, period_start=AT.date(), kind="threshold", threshold=100, spent=10, limit=10, projected=10
    )
    AlertDelivery.objects.create(budget=budget, alert=alert, channel="email", delivery_id=uuid.uuid4(), log=[{"ok": 1}])
    from usage.models import Monitor

    Monitor.objects.create(tenant=tenant, name="errors", metric="error_rate", threshold=5, channels=budget)
    login = {"username": owner.email, "ip_address": "203.0.113.7", "user_agent": "t", "path_info": "/admin/login/"}
    AccessAttempt.objects.create(**login, get_data="", post_data="", failures_since_start=3)
    AccessFailureLog.objects.create(**login)
    AccessLog.objects.create(**login)
    TwoFactorDevice.objects.create(user=owner, secret="JBSWY3DPEHPK3PXP", confirmed_at=AT)


def test_every_registered_model_has_data(data):
    empty = [model._meta.label for model in REGISTERED if not model._default_manager.exists()]
    assert not empty, f"add a row of {empty} to the data fixture"


def _admin_url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", REGISTERED, ids=IDS)
def test_changelist_loads(superuser_client, data, model):
    response = superuser_client.get(_admin_url(model, "changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count > 0


@pytest.mark.parametrize("model", REGISTERED, ids=IDS)
def test_add_page_loads_or_is_read_only(superuser_client, superuser, data, model, rf):
    request = rf.get("/")
    request.user = superuser
    response = superuser_client.get(_admin_url(model, "add"))
    can_add = admin.site._registry[model].has_add_permission(request)
    assert response.status_code == (200 if can_add else 403)


@pytest.mark.parametrize("model", REGISTERED, ids=IDS)
def test_change_page_loads(superuser_client, data, model):
    obj = model._default_manager.first()
    assert superuser_client.get(_admin_url(model, "change", obj.pk)).status_code == 200


def test_search_and_filters_load(superuser_client, data, tenant):
    for model, params in [
        (CallRecord, {"q": "r-3", "tenant__id__exact": tenant.pk}),
        (UsageDaily, {"q": "deepseek"}),
        (ModelPrice, {"q": "deepseek"}),
    ]:
        assert superuser_client.get(_admin_url(model, "changelist"), params).status_code == 200


def test_call_record_search_by_a_whole_request_id(superuser_client, data):
    response = superuser_client.get(_admin_url(CallRecord, "changelist"), {"q": "r-29"})
    assert [row.request_id for row in response.context["cl"].result_list] == ["r-29"]


BIG_TABLES = [m for m in REGISTERED if isinstance(admin.site._registry[m], usage_admin.BigTableAdmin)]


@pytest.mark.parametrize("model", BIG_TABLES, ids=[m._meta.label for m in BIG_TABLES])
def test_big_table_changelists_never_count_the_whole_table(superuser_client, data, model):
    with CaptureQueriesContext(connection) as queries:
        response = superuser_client.get(_admin_url(model, "changelist"))
    assert response.status_code == 200
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts, "the paginator should count, within its cap"
    assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_call_record_changelist_count_is_capped(superuser_client, data, monkeypatch):
    monkeypatch.setattr(usage_admin.CappedCountPaginator, "CAP", 12)
    response = superuser_client.get(_admin_url(CallRecord, "changelist"))
    assert response.context["cl"].result_count == 12
    assert response.context["cl"].full_result_count is None


def test_call_record_changelist_query_count_is_small(superuser_client, data, django_assert_max_num_queries):
    # Session, user, memberships, the capped count, one page with its joins: no query per row.
    with django_assert_max_num_queries(10):
        superuser_client.get(_admin_url(CallRecord, "changelist"))


def test_ledger_rows_are_read_only(superuser_client, data):
    record = CallRecord.objects.first()
    response = superuser_client.post(_admin_url(CallRecord, "change", record.pk), {"input_tokens": 999})
    assert response.status_code == 403
    record.refresh_from_db()
    assert record.input_tokens == 10


def test_admin_created_user_logs_in_with_a_lower_case_email(superuser_client, db):
    response = superuser_client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "New.Person@Example.TEST",
            "usable_password": "true",
            "password1": "Tr1cky-pass",
            "password2": "Tr1cky-pass",
        },
    )
    assert response.status_code == 302
    # Through the login page: authenticate() needs the request (django-axes counts failures by it).
    login = Client().post(reverse("login"), {"username": "new.person@example.test", "password": "Tr1cky-pass"})
    assert login.status_code == 302 and "_auth_user_id" in login.client.session


def test_admin_refuses_an_email_that_differs_only_by_case(superuser_client, owner):
    response = superuser_client.post(
        reverse("admin:accounts_user_add"),
        {"email": "OWNER@acme.test", **NEW_PASSWORD},
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()


def test_api_key_created_in_the_admin_shows_its_secret_once(superuser_client, tenant):
    response = superuser_client.post(
        reverse("admin:accounts_apikey_add"), {"name": "from-admin", "tenant": tenant.pk}, follow=True
    )
    key = ApiKey.objects.get(name="from-admin")
    secret = response.context["secret"]
    assert ApiKey.find_by_secret(secret) == key
    assert secret in response.content.decode() and "no-store" in response["Cache-Control"]
    # The secret travels in the page only: never in a message cookie or the session.
    assert not [str(m) for m in response.context["messages"]]
    assert secret not in str(response.cookies)


def test_an_existing_keys_tenant_cannot_be_changed_in_the_admin(superuser_client, tenant, other_tenant, api_key):
    url = reverse("admin:accounts_apikey_change", args=[api_key.pk])
    superuser_client.post(url, {"name": "renamed", "tenant": other_tenant.pk})
    api_key.refresh_from_db()
    assert (api_key.name, api_key.tenant) == ("renamed", tenant)


def test_alert_history_changelist_needs_few_queries(superuser_client, data, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        response = superuser_client.get(_admin_url(BudgetAlert, "changelist"))
    assert response.status_code == 200 and b"cap" in response.content


def test_call_record_search_by_prefix(superuser_client, data):
    response = superuser_client.get(_admin_url(CallRecord, "changelist"), {"q": "r-1*"})
    found = sorted(row.request_id for row in response.context["cl"].result_list)
    assert found and all(request_id.startswith("r-1") for request_id in found)
    assert found == sorted(CallRecord.objects.filter(request_id__startswith="r-1").values_list("request_id", flat=True))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="index plans are PostgreSQL's")
def test_request_id_prefix_search_uses_an_index(data):
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        plan = CallRecord.objects.filter(request_id__startswith="r-1").explain()
        cursor.execute("RESET enable_seqscan")
        # Each month's partition carries its own copy of the parent's pattern-ops index.
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'callrecord_request_prefix'::regclass"
        )
        prefix_indexes = {"callrecord_request_prefix", *(name for (name,) in cursor.fetchall())}
    used = set(re.findall(r"Index (?:Only )?Scan using (\S+)", plan)) | set(
        re.findall(r"Bitmap Index Scan on (\S+)", plan)
    )
    assert used and used <= prefix_indexes, plan
    assert "Seq Scan" not in plan, plan


def test_capped_count_reads_as_a_lower_bound(superuser_client, data, monkeypatch):
    monkeypatch.setattr(usage_admin.CappedCountPaginator, "CAP", 12)
    page = superuser_client.get(_admin_url(CallRecord, "changelist")).content.decode()
    assert "12+ call records" in page
    monkeypatch.setattr(usage_admin.CappedCountPaginator, "CAP", 10_000)
    page = superuser_client.get(_admin_url(CallRecord, "changelist")).content.decode()
    assert "+ call records" not in page


def test_deleting_a_two_factor_device_removes_the_recovery_codes_and_shows_no_secret(admin_client, owner):
    from accounts import twofactor

    device = twofactor.enrolment_start(owner)
    twofactor.recovery_codes_renew(owner)
    url = reverse("admin:accounts_twofactordevice_change", args=[device.pk])
    assert device.secret not in admin_client.get(url).content.decode()
    delete = reverse("admin:accounts_twofactordevice_delete", args=[device.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not TwoFactorDevice.objects.filter(user=owner).exists()
    assert not RecoveryCode.objects.filter(user=owner).exists()
