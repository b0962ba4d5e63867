"""The ledger across partitions: one call per request id whatever month it claims, partitions
created for any month, and the database still protecting keys and models that have calls."""

import datetime as dt
import json
import threading

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.test import Client
from django.utils import timezone

from accounts import services as account_services
from usage.ledger import partitions
from usage.models import CallRecord, CallRequest, UsageDaily
from usage.reporting import selectors
from usage.reporting.periods import Period
from usage.reporting.selectors import UsageFilters

from .ledger_helpers import item, ledger_by_day, partition_of, rollup_by_day, store

postgresql_only = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="partitions are PostgreSQL's")


@pytest.fixture
def key(tenant):
    key, _secret = account_services.api_key_create(tenant=tenant, name="k")
    return key


# --- the dedup contract across months -------------------------------------------------------


def test_the_same_request_id_in_another_month_is_a_conflict_over_the_api(db, key, llm, monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: dt.datetime(2025, 3, 10, 12, tzinfo=dt.UTC))
    _token, secret = account_services.service_token_create(name="gateway")
    gateway = Client(headers={"Authorization": f"Bearer {secret}"})

    def post(calls):
        return gateway.post("/api/v1/ingest/calls", json.dumps({"calls": calls}), content_type="application/json")

    march = item(key, "r1", "2025-03-01T00:00:00Z")
    assert post([march]).json()["accepted"] == 1
    body = post([item(key, "r1", "2025-02-28T23:59:59Z"), march]).json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 1, 1)
    assert [(error["index"], error["code"]) for error in body["errors"]] == [(0, "conflict")]
    assert list(CallRecord.objects.values_list("request_id", "occurred_at")) == [
        ("r1", dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    ]
    assert list(UsageDaily.objects.values_list("day", "calls")) == [(dt.date(2025, 3, 1), 1)]


def test_the_same_request_id_in_another_month_is_a_conflict_in_an_import(key, llm):
    assert store([item(key, "r1", "2024-01-31T23:00:00Z")]).accepted == 1
    result = store([item(key, "r1", "2024-06-01T00:00:00Z"), item(key, "r1", "2024-01-31T23:00:00Z")])
    assert (result.accepted, result.duplicates, result.rejected) == (0, 1, 1)
    assert [(error["index"], error["code"]) for error in result.errors] == [(0, "conflict")]
    assert CallRecord.objects.count() == CallRequest.objects.count() == 1


def test_a_later_item_matching_the_stored_month_is_a_duplicate_after_a_conflict_in_another(key, llm):
    store([item(key, "r1", "2024-01-15T00:00:00Z")])
    result = store([item(key, "r1", "2024-02-15T00:00:00Z"), item(key, "r1", "2024-01-15T00:00:00Z")])
    assert (result.duplicates, result.rejected) == (1, 1)


def _send_concurrently(batches):
    """Each batch through the import service from its own thread and connection, released at once."""
    barrier = threading.Barrier(len(batches))
    results = [None] * len(batches)

    def sender(position):
        try:
            barrier.wait()
            results[position] = store(batches[position])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_of_the_same_ids_in_different_months_store_each_once(tenant, llm):
    key, _ = account_services.api_key_create(tenant=tenant, name="k")
    months = ["2024-03-31T23:30:00Z", "2024-04-01T00:30:00Z"]  # either side of a partition bound
    # Four senders, two per month, each with the same 150 request ids.
    batches = [[item(key, f"r{n}", months[sender % 2], input_tokens=n) for n in range(150)] for sender in range(4)]
    results = _send_concurrently(batches)
    assert sum(result.accepted for result in results) == 150
    # Per id: the sender of the same month as the stored call sends a duplicate, the two others a conflict.
    assert sum(result.duplicates for result in results) == 150
    assert sum(result.rejected for result in results) == 300
    assert {error["code"] for result in results for error in result.errors} == {"conflict"}
    assert CallRecord.objects.count() == CallRequest.objects.count() == 150
    assert CallRecord.objects.values("request_id").distinct().count() == 150
    stored = dict(CallRecord.objects.values_list("request_id", "occurred_at"))
    claims = dict(CallRequest.objects.values_list("request_id", "occurred_at"))
    assert stored == claims
    assert rollup_by_day(tenant) == ledger_by_day(tenant)


# --- partitions (PostgreSQL) ------------------------------------------------------------------


@postgresql_only
def test_a_backfill_into_a_month_without_partition_creates_it(key, llm):
    assert (
        store([item(key, "old", "2019-05-31T23:59:59.999999Z"), item(key, "new", "2019-06-01T00:00:00Z")]).accepted == 2
    )
    assert partition_of("old") == ["usage_callrecord_y2019m05"]
    assert partition_of("new") == ["usage_callrecord_y2019m06"]


@postgresql_only
def test_a_write_outside_the_services_lands_in_default_and_the_beat_splits_it_out(tenant, key, llm):
    at = dt.datetime(2018, 2, 3, tzinfo=dt.UTC)
    CallRecord.objects.create(
        tenant=tenant, api_key=key, model=llm, occurred_at=at, request_id="orm", input_tokens=1, output_tokens=1
    )
    assert partition_of("orm") == [partitions.DEFAULT]
    created = partitions.ledger_partitions_ahead(now=timezone.now())
    assert "usage_callrecord_y2018m02" in created
    assert partition_of("orm") == ["usage_callrecord_y2018m02"]
    assert CallRecord.objects.get(request_id="orm").occurred_at == at


@postgresql_only
def test_the_beat_creates_partitions_ahead(db):
    created = partitions.ledger_partitions_ahead(now=dt.datetime(2031, 11, 5, tzinfo=dt.UTC), months=2)
    assert created == ["usage_callrecord_y2031m11", "usage_callrecord_y2031m12", "usage_callrecord_y2032m01"]
    assert partitions.ledger_partitions_ahead(now=dt.datetime(2031, 11, 5, tzinfo=dt.UTC), months=2) == []


@postgresql_only
def test_the_ledger_api_query_reads_only_the_partitions_of_its_range(tenant, key, llm):
    store([item(key, "a", "2024-01-10T00:00:00Z"), item(key, "b", "2024-03-10T00:00:00Z")])
    filters = UsageFilters(period=Period(dt.date(2024, 3, 1), dt.date(2024, 3, 31)))
    calls = selectors.ledger_calls(tenant=tenant, filters=filters).order_by("-occurred_at", "-id")[:100]
    with connection.cursor() as cursor:
        sql, params = calls.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "usage_callrecord_y2024m03" in plan
    assert "usage_callrecord_y2024m01" not in plan
    assert partitions.DEFAULT not in plan


# --- keys and models with calls stay protected -------------------------------------------------


def test_a_model_with_calls_cannot_be_deleted(key, llm):
    store([item(key, "r1", "2024-01-15T00:00:00Z")])
    with pytest.raises(IntegrityError), transaction.atomic():
        llm.delete()


@pytest.mark.parametrize("column", ["api_key_id", "model_id"])
def test_the_database_refuses_to_delete_a_key_or_model_with_calls(key, llm, column):
    """Below the ORM's PROTECT: the ledger's own foreign keys (deferred, so checked at commit)."""
    store([item(key, "r1", "2024-01-15T00:00:00Z")])
    table, target = ("accounts_apikey", key.pk) if column == "api_key_id" else ("usage_model", llm.pk)
    with pytest.raises(IntegrityError, match="usage_callrecord"):
        _delete_in_sql(table, column, target)
    assert CallRecord.objects.count() == 1


def _delete_in_sql(table, column, target):
    """Delete the row and its rollups in SQL, and check the constraints before leaving."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            rollups = ["usage_usagehourly", "usage_usagedaily"] + (
                ["usage_usagedailymodel"] if column == "model_id" else []
            )
            for rollup in rollups:
                cursor.execute(f"DELETE FROM {rollup} WHERE {column} = %s", [target])
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [target])
            if connection.vendor == "postgresql":
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        if connection.vendor != "postgresql":
            connection.check_constraints(table_names=["usage_callrecord"])
