"""Evaluation: state, thresholds that fire once per period, the forecast alert, the ingestion hook."""

import datetime as dt
import json

import pytest
from django.core import mail
from django.test import Client

from accounts import services as accounts
from usage.budgets import services, tasks
from usage.budgets.periods import budget_period
from usage.budgets.selectors import budget_status
from usage.ingestion import services as usage_services
from usage.localtime import tenant_today
from usage.models import AlertDelivery, Budget, BudgetAlert
from usage.reporting.costs import usage_cost
from usage.reporting.periods import Period
from usage.reporting.selectors import UsageFilters

from ..usage.factories import price, utc
from .helpers import budget, spend, start_of_today


def fired(b):
    return sorted((a.kind, a.threshold) for a in BudgetAlert.objects.filter(budget=b))


def test_each_threshold_fires_once_however_often_it_is_evaluated(tenant, api_key, llm, committed):
    b = budget(tenant, amount=1000, emails="ops@acme.test")
    spend(tenant, api_key, llm, 850)
    for _ in range(3):
        committed(services.budget_evaluate, budget=b)
    assert fired(b) == [("threshold", 50), ("threshold", 80)]
    assert AlertDelivery.objects.filter(budget=b, channel="email").count() == 2
    assert len(mail.outbox) == 2
    spend(tenant, api_key, llm, 150)
    committed(services.budget_evaluate, budget=b)
    committed(services.budget_evaluate, budget=b)
    assert fired(b) == [("threshold", 50), ("threshold", 80), ("threshold", 100)]
    assert len(mail.outbox) == 3 and "reached 100%" in mail.outbox[-1].subject


def test_the_thresholds_fire_again_in_the_next_period(tenant, api_key, llm):
    b = budget(tenant, amount=100, period="day", thresholds=[100], created_at=utc(2026, 4, 30))
    spend(tenant, api_key, llm, 100, at=utc(2026, 5, 1, 10))
    spend(tenant, api_key, llm, 100, at=utc(2026, 5, 2, 10))
    services.budget_evaluate(budget=b, now=utc(2026, 5, 1, 12))
    services.budget_evaluate(budget=b, now=utc(2026, 5, 2, 12))
    services.budget_evaluate(budget=b, now=utc(2026, 5, 2, 13))
    starts = sorted(BudgetAlert.objects.filter(budget=b).values_list("period_start", flat=True))
    assert starts == [dt.date(2026, 5, 1), dt.date(2026, 5, 2)]


def test_a_late_call_crosses_the_previous_period_later(tenant, api_key, llm):
    b = budget(tenant, amount=100, period="day", thresholds=[100], created_at=utc(2026, 4, 30))
    services.budget_evaluate(budget=b, now=utc(2026, 5, 2, 0, 5))
    spend(tenant, api_key, llm, 120, at=utc(2026, 5, 1, 23, 59))  # reported after midnight
    services.budget_evaluate(budget=b, now=utc(2026, 5, 2, 0, 10))
    assert list(BudgetAlert.objects.values_list("period_start", "threshold")) == [(dt.date(2026, 5, 1), 100)]


def test_a_price_change_crosses_a_threshold_later(tenant, api_key, llm):
    day = tenant_today(tenant) - dt.timedelta(days=40)
    price(llm, day, "1")
    b = budget(tenant, metric="cost", amount=10, currency="USD", thresholds=[50, 100])
    spend(tenant, api_key, llm, 4000)  # 4.00 USD
    services.budget_evaluate(budget=b)
    assert fired(b) == []
    price(llm, day, "3", tenant=tenant)  # a contract price: 12.00 USD
    services.budget_evaluate(budget=b)
    assert fired(b) == [("threshold", 50), ("threshold", 100)]


def test_cost_spent_is_the_usage_pages_number(tenant, api_key, other_api_key, llm):
    price(llm, tenant_today(tenant) - dt.timedelta(days=40), "0.0123", "0.5", cached="0.001")
    spend(tenant, api_key, llm, 12345)
    b = budget(tenant, metric="cost", amount=1000, currency="USD", api_key=api_key)
    status = budget_status(budget=b)
    period = Period(status.period.start, status.today)
    page = usage_cost(tenant=tenant, filters=UsageFilters(period=period, api_key=api_key))
    assert status.spent == page.amounts["USD"] and status.spent > 0


def test_amounts_in_another_currency_are_not_counted(tenant, api_key, llm):
    price(llm, tenant_today(tenant) - dt.timedelta(days=40), "1", currency="EUR")
    spend(tenant, api_key, llm, 5000)
    b = budget(tenant, metric="cost", amount=1, currency="USD")
    assert budget_status(budget=b).spent == 0


def test_a_key_budget_counts_only_that_key(tenant, api_key, llm):
    other_key = accounts.api_key_create(tenant=tenant, name="staging")[0]
    spend(tenant, api_key, llm, 300)
    spend(tenant, other_key, llm, 500)
    assert budget_status(budget=budget(tenant, api_key=api_key)).spent == 300
    assert budget_status(budget=budget(tenant, name="all")).spent == 800


def test_forecast_alert_fires_once_when_the_projection_passes_100(tenant, api_key, llm):
    for day in range(8, 15):
        spend(tenant, api_key, llm, 100, at=utc(2026, 4, day, 12))
    b = budget(tenant, amount=1000, thresholds=[100], created_at=utc(2026, 4, 1))
    now = utc(2026, 4, 15, 12)
    assert budget_status(budget=b, now=now).projected == 700 + 1550  # 15.5 days left at noon
    services.budget_evaluate(budget=b, now=now)
    services.budget_evaluate(budget=b, now=now)
    assert fired(b) == [("forecast", 100)]
    b.refresh_from_db()
    assert b.state == Budget.State.WARNING and b.state_period_start == dt.date(2026, 4, 1)


def test_state_is_within_warning_or_exceeded(tenant, api_key, llm):
    b = budget(tenant, amount=1000, period="day")  # no usage before today: no run rate, no forecast
    assert budget_status(budget=b).state == "within"
    spend(tenant, api_key, llm, 800)
    assert budget_status(budget=b).state == "warning"
    spend(tenant, api_key, llm, 200)
    assert budget_status(budget=b).state == "exceeded"


# --- Alerts start with the budget's first period (issue 25, item 12) --------------------------------


def test_a_new_budget_fires_nothing_for_the_period_before_it_existed(tenant, api_key, llm, committed):
    yesterday = start_of_today(tenant) - dt.timedelta(hours=12)
    # Evaluated late in the day, whatever the wall clock: early in it 600 would also forecast 1000.
    late = start_of_today(tenant) + dt.timedelta(hours=23, minutes=59)
    spend(tenant, api_key, llm, 5000, at=yesterday)  # yesterday's day: 500% of the budget below
    b = budget(tenant, amount=1000, period="day", emails="ops@acme.test", thresholds=[50, 80, 100])
    committed(services.budget_evaluate, budget=b, now=late)
    assert fired(b) == [] and AlertDelivery.objects.count() == 0 and mail.outbox == []
    spend(tenant, api_key, llm, 600)  # today, the budget's first period: that alerts
    committed(services.budget_evaluate, budget=b, now=late)
    assert fired(b) == [("threshold", 50)]


def test_a_new_monthly_budget_fires_nothing_for_last_month(tenant, api_key, llm):
    today = tenant_today(tenant)
    last_month = utc(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 15, 12)
    spend(tenant, api_key, llm, 5000, at=last_month)
    b = budget(tenant, amount=1000)
    services.budget_evaluate(budget=b, now=utc(today.year, today.month, 1, 12))
    assert fired(b) == []


def test_a_budget_older_than_the_previous_period_still_catches_its_late_calls(tenant, api_key, llm):
    b = budget(tenant, amount=100, period="day", thresholds=[100], created_at=utc(2026, 4, 20))
    spend(tenant, api_key, llm, 150, at=utc(2026, 5, 1, 23))
    services.budget_evaluate(budget=b, now=utc(2026, 5, 2, 1))
    assert list(BudgetAlert.objects.values_list("period_start", "threshold")) == [(dt.date(2026, 5, 1), 100)]


# --- The ingestion hook ----------------------------------------------------------------------------


def _ingest(key_secret_pair, llm, tokens):
    key, _ = key_secret_pair
    item = {
        "request_id": f"r-{tokens}",
        "api_key": key.public_id,
        "model": llm.name,
        "occurred_at": start_of_today(key.tenant).isoformat(),
        "input_tokens": tokens,
        "output_tokens": 0,
    }
    return usage_services.call_records_ingest(items=[item])


@pytest.fixture
def caller(tenant):
    return accounts.api_key_create(tenant=tenant, name="caller")


def test_an_ingested_batch_evaluates_the_tenants_budgets(tenant, caller, llm, django_capture_on_commit_callbacks):
    b = budget(tenant, amount=100, thresholds=[100])
    with django_capture_on_commit_callbacks(execute=True):
        result = _ingest(caller, llm, 150)
    assert result.accepted == 1
    assert fired(b) == [("threshold", 100)]


def test_a_broker_outage_never_fails_ingestion(tenant, caller, llm, monkeypatch, django_capture_on_commit_callbacks):
    budget(tenant, amount=100, thresholds=[100])

    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.evaluate_tenant_budgets, "delay", down)
    with django_capture_on_commit_callbacks(execute=True):
        result = _ingest(caller, llm, 150)
    assert result.accepted == 1 and BudgetAlert.objects.count() == 0


def test_tenants_without_budgets_enqueue_nothing(tenant, caller, llm, monkeypatch, django_capture_on_commit_callbacks):
    calls = []
    monkeypatch.setattr(tasks.evaluate_tenant_budgets, "delay", calls.append)
    with django_capture_on_commit_callbacks(execute=True):
        _ingest(caller, llm, 10)
    assert calls == []


def test_evaluate_budgets_hands_out_a_delivery_left_pending(tenant, committed):
    b = budget(tenant, emails="ops@acme.test")
    old = AlertDelivery.objects.create(budget=b, channel="email", delivery_id="6f1c7f7e-1111-4b2a-9c3e-000000000001")
    committed(services.budgets_evaluate_all)
    old.refresh_from_db()
    assert old.status == "delivered" and len(mail.outbox) == 1


# --- keys/verify -------------------------------------------------------------------------------------


@pytest.fixture
def gateway(db):
    _token, secret = accounts.service_token_create(name="gateway")
    return Client(headers={"Authorization": f"Bearer {secret}"})


def verify(client, secret):
    return client.post("/api/v1/keys/verify", data=json.dumps({"key": secret}), content_type="application/json")


def test_verify_has_no_budget_member_without_an_enforcing_budget(gateway, tenant, caller):
    budget(tenant, enforce=False)
    assert "budget" not in verify(gateway, caller[1]).json()


def test_verify_answers_the_worst_enforcing_budget_state(gateway, tenant, caller, llm):
    key, secret = caller
    budget(tenant, name="tenant-wide", amount=10_000, enforce=True, period="day")
    budget(tenant, name="this key", amount=100, enforce=True, api_key=key, period="day")
    spend(tenant, key, llm, 120)
    answer = verify(gateway, secret).json()
    assert answer["budget"]["state"] == "exceeded" and answer["budget"]["budget"] == "this key"
    assert answer["budget"]["max_age_seconds"] == 120 and answer["budget"]["as_of"].endswith("Z")


def test_verify_reevaluates_a_state_older_than_the_bound(gateway, tenant, caller, llm, settings):
    key, secret = caller
    b = budget(tenant, amount=100, enforce=True, period="day")
    services.budget_evaluate(budget=b, now=utc(2020, 1, 1))  # an old state
    spend(tenant, key, llm, 100)
    assert verify(gateway, secret).json()["budget"]["state"] == "exceeded"


def test_verify_keeps_a_fresh_state_within_the_bound(gateway, tenant, caller, llm):
    key, secret = caller
    b = budget(tenant, amount=100, enforce=True, period="day")
    services.budget_evaluate(budget=b)
    spend(tenant, key, llm, 100)  # not evaluated yet: the answer may lag by at most max_age_seconds
    assert verify(gateway, secret).json()["budget"]["state"] == "within"


def test_another_keys_budget_does_not_apply(gateway, tenant, caller, llm):
    _key, secret = caller
    other = accounts.api_key_create(tenant=tenant, name="other")[0]
    budget(tenant, amount=1, enforce=True, api_key=other)
    assert "budget" not in verify(gateway, secret).json()


def test_budget_period_helper_is_used_for_staleness(tenant):
    b = budget(tenant, period="week", week_start=3)
    assert budget_period(b, dt.date(2026, 3, 11)).start == dt.date(2026, 3, 5)
