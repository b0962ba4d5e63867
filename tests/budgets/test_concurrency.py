"""Exactly once under concurrency: many evaluations and many ingesting clients cross at the same moment.

Separate threads hold separate database connections, so their alert inserts really race; the
unique constraint lets one win per threshold and period.
"""

import datetime as dt
import threading

import pytest
from django.core import mail
from django.db import connections

from accounts import services as accounts
from usage.budgets import services
from usage.ingestion import services as usage_services
from usage.models import AlertDelivery, Budget, BudgetAlert, Model

from ..usage.factories import make_calls, price
from .helpers import budget, start_of_today

pytestmark = pytest.mark.django_db(transaction=True)
CLIENTS = 8


def in_threads(function, count=CLIENTS):
    barrier, errors = threading.Barrier(count), []

    def run(index):
        try:
            barrier.wait(timeout=30)
            function(index)
        except Exception as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


@pytest.fixture
def cast(db):
    tenant = accounts.tenant_create(slug="race", name="Race", timezone_name="Asia/Kolkata")
    key = accounts.api_key_create(tenant=tenant, name="k")[0]
    model = Model.objects.create(name="m/race")
    # Priced: these tests count budget alerts only (an unpriced model is also told of, once: test_unpriced_alert).
    price(model, dt.date(2020, 1, 1), "0.001")
    return tenant, key, model


def _threshold_counts(b):
    return sorted(BudgetAlert.objects.filter(budget=b).values_list("threshold", flat=True))


def test_concurrent_evaluations_fire_each_threshold_once(cast):
    tenant, key, model = cast
    b = budget(tenant, amount=100, thresholds=[80, 100], emails="ops@race.test")
    make_calls(tenant, [{"api_key": key, "model": model, "occurred_at": start_of_today(tenant), "input_tokens": 100}])
    in_threads(lambda _i: services.budget_evaluate(budget=Budget.objects.select_related("tenant").get(pk=b.pk)))
    assert _threshold_counts(b) == [80, 100]
    assert AlertDelivery.objects.filter(budget=b).count() == 2
    assert len(mail.outbox) == 2


def test_eight_ingesting_clients_crossing_80_and_100_at_once_fire_one_alert_each(cast):
    tenant, key, model = cast
    b = budget(tenant, amount=800, thresholds=[80, 100], emails="ops@race.test")
    at = start_of_today(tenant).isoformat()

    def ingest(index):
        item = {
            "request_id": f"race-{index}",
            "api_key": key.public_id,
            "model": model.name,
            "occurred_at": at,
            "input_tokens": 100,
            "output_tokens": 0,
        }
        assert usage_services.call_records_ingest(items=[item]).accepted == 1

    in_threads(ingest)
    assert _threshold_counts(b) == [80, 100]
    assert sorted(d.alert.threshold for d in AlertDelivery.objects.select_related("alert")) == [80, 100]
    assert len(mail.outbox) == 2
