"""Warehouse export (``usage.warehouse``) against a real local S3 server (moto in server mode).

Two tenants (UTC and New York) with calls on the same days through the real write path; the
Parquet read back with pyarrow (and DuckDB) equals the ledger exactly, per tenant; a rerun leaves
the same objects (ETags); a command killed mid-way and run again ends exactly like a clean run.
"""

import datetime as dt
import io
import os
import random
import signal
import socket
import subprocess
import sys
import uuid
from collections import defaultdict

import boto3
import duckdb
import pyarrow.parquet as pq
import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection
from moto.server import ThreadedMotoServer

from accounts import services as accounts
from usage import tasks
from usage.ingestion import services
from usage.models import CallRecord, Model, UsageDaily
from usage.reporting.periods import Period
from usage.reporting.query import UsageQuery

from .conftest import ROOT, database_url
from .factories import utc

NOW = utc(2026, 11, 28, 15, 30)
DAYS = Period(dt.date(2026, 11, 20), dt.date(2026, 11, 27))
RANGE = ["--start", "2026-11-20", "--end", "2026-11-27"]
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port())
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, settings):
    settings.WAREHOUSE_S3_ENDPOINT_URL = s3_endpoint
    settings.WAREHOUSE_S3_ACCESS_KEY_ID = CREDENTIALS["AWS_ACCESS_KEY_ID"]
    settings.WAREHOUSE_S3_SECRET_ACCESS_KEY = CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    name = f"wh-{uuid.uuid4().hex[:12]}"
    _client(s3_endpoint).create_bucket(Bucket=name)
    return name


def _client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)


def _ingest(tenants, keys, models, count, *, prefix, seed):
    rng = random.Random(seed)
    items = []
    for n in range(count):
        tenant = tenants[n % 2]
        when = utc(2026, 11, 20) + dt.timedelta(seconds=rng.randrange(0, 8 * 86400))
        item = {
            "request_id": f"{prefix}-{n}",
            "api_key": rng.choice(keys[tenant.pk]).public_id,
            "model": rng.choice(models).name,
            "occurred_at": when.isoformat().replace("+00:00", "Z"),
            "input_tokens": rng.randrange(0, 5000),
            "output_tokens": rng.randrange(0, 2000),
        }
        if rng.random() < 0.5:
            item["cached_input_tokens"] = rng.randrange(0, item["input_tokens"] + 1)
        items.append(item)
    assert services.call_records_ingest(items=items, now=NOW).accepted == count


def _world():
    tenants = [
        accounts.tenant_create(slug="acme", name="Acme", timezone_name="UTC"),
        accounts.tenant_create(slug="globex", name="Globex", timezone_name="America/New_York"),
    ]
    keys = {t.pk: [accounts.api_key_create(tenant=t, name=f"key-{n}")[0] for n in range(2)] for t in tenants}
    models = [Model.objects.create(name=f"public/model-{n}") for n in range(2)]
    _ingest(tenants, keys, models, 300, prefix="r", seed=4)
    return tenants, keys, models


@pytest.fixture
def world(db):
    return _world()


def _objects(endpoint, bucket, prefix=""):
    """{key: ETag} of the bucket's objects under ``prefix``."""
    pages = _client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", [])}


def _tables(endpoint, bucket, table):
    client = _client(endpoint)
    for key in sorted(_objects(endpoint, bucket)):
        if key.startswith(f"usage/{table}/"):
            yield key, pq.read_table(io.BytesIO(client.get_object(Bucket=bucket, Key=key)["Body"].read()))


def _ledger(tenant):
    calls = UsageQuery(tenant, DAYS).calls()
    return {
        "calls": calls.count(),
        "input_tokens": sum(c.input_tokens for c in calls),
        "output_tokens": sum(c.output_tokens for c in calls),
        "cached_input_tokens": sum(c.cached_input_tokens or 0 for c in calls),
    }


def _export(*extra):
    out = io.StringIO()
    call_command("export_warehouse", "--bucket", extra[0], "--prefix", "usage", *RANGE, *extra[1:], stdout=out)
    return out.getvalue()


def test_parquet_totals_equal_the_ledger_per_tenant(world, bucket, s3_endpoint):
    tenants, _keys, _models = world
    output = _export(bucket)
    assert "acme 2026-11-20: written" in output and "globex 2026-11-27: written" in output
    sums = {t.slug: defaultdict(int) for t in tenants}
    for key, table in _tables(s3_endpoint, bucket, "calls"):
        slug = key.split("tenant=")[1].split("/")[0]
        assert set(table.column("tenant").to_pylist()) == {slug}
        day = dt.date.fromisoformat(key.split("day=")[1].split("/")[0])
        assert set(table.column("day").to_pylist()) == {day}
        sums[slug]["calls"] += table.num_rows
        for column in ("input_tokens", "output_tokens", "cached_input_tokens"):
            sums[slug][column] += sum(value or 0 for value in table.column(column).to_pylist())
    for tenant in tenants:
        assert dict(sums[tenant.slug]) == _ledger(tenant)
    daily = defaultdict(int)
    for _key, table in _tables(s3_endpoint, bucket, "daily"):
        for slug, calls in zip(table.column("tenant").to_pylist(), table.column("calls").to_pylist(), strict=True):
            daily[slug] += calls
    assert dict(daily) == {t.slug: _ledger(t)["calls"] for t in tenants}
    rollup = UsageDaily.objects.filter(tenant=tenants[1], day__range=(DAYS.start, DAYS.end)).count()
    assert sum(t.num_rows for k, t in _tables(s3_endpoint, bucket, "daily") if "tenant=globex" in k) == rollup


def test_duckdb_reads_the_layout_with_its_partitions(world, bucket, s3_endpoint, tmp_path):
    tenants, _keys, _models = world
    _export(bucket)
    client = _client(s3_endpoint)
    for key in _objects(s3_endpoint, bucket, "usage/calls/"):
        path = tmp_path / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    rows = duckdb.sql(
        f"SELECT tenant, count(*), sum(input_tokens), sum(output_tokens) FROM read_parquet("
        f"'{tmp_path}/usage/calls/*/*/*.parquet', hive_partitioning = false) GROUP BY tenant ORDER BY tenant"
    ).fetchall()
    assert rows == [
        (t.slug, _ledger(t)["calls"], _ledger(t)["input_tokens"], _ledger(t)["output_tokens"]) for t in tenants
    ]


def test_rerun_skips_and_rewrites_the_same_bytes(world, bucket, s3_endpoint):
    _export(bucket)
    first = _objects(s3_endpoint, bucket)
    assert "written" not in _export(bucket).replace("0 partitions written", "")
    assert _objects(s3_endpoint, bucket) == first
    # Without the manifests every partition is written again: same bytes, same ETags.
    client = _client(s3_endpoint)
    for key in _objects(s3_endpoint, bucket, "usage/_manifests/"):
        client.delete_object(Bucket=bucket, Key=key)
    assert "complete, skipped" not in _export(bucket)
    assert _objects(s3_endpoint, bucket) == first
    assert any(key.endswith("tenant=acme/day=2026-11-20/part-0.parquet") for key in first)


def test_a_late_call_redoes_only_its_day(world, bucket, s3_endpoint):
    tenants, keys, models = world
    _export(bucket)
    late = {"request_id": "late", "api_key": keys[tenants[0].pk][0].public_id, "model": models[0].name}
    late |= {"occurred_at": "2026-11-22T12:00:00Z", "input_tokens": 7, "output_tokens": 3}
    assert services.call_records_ingest(items=[late], now=NOW).accepted == 1
    output = _export(bucket)
    assert [line for line in output.splitlines() if line.endswith(": written")] == ["acme 2026-11-22: written"]
    calls = sum(t.num_rows for k, t in _tables(s3_endpoint, bucket, "calls") if "tenant=acme" in k)
    assert calls == _ledger(tenants[0])["calls"]


def test_beat_task_exports_recent_closed_days_when_a_bucket_is_set(world, bucket, s3_endpoint, settings):
    settings.WAREHOUSE_BUCKET, settings.WAREHOUSE_PREFIX, settings.WAREHOUSE_DAYS_BACK = bucket, "usage", 3
    written, skipped = tasks.warehouse_export()
    days = {key.split("day=")[1][:10] for key in _objects(s3_endpoint, bucket, "usage/_manifests/")}
    # Acme (UTC): 25th-27th; Globex (New York) also its 27th, the last closed day of both.
    assert days == {"2026-11-25", "2026-11-26", "2026-11-27"} and (written, skipped) == (6, 0)
    settings.WAREHOUSE_BUCKET = ""
    assert tasks.warehouse_export() == (0, 0)


def test_bad_arguments_are_errors(world, bucket):
    with pytest.raises(CommandError):
        call_command("export_warehouse", "--bucket", bucket, "--tenant", "nope")
    with pytest.raises(CommandError):
        call_command("export_warehouse", "--bucket", bucket, "--start", "2026-11-27", "--end", "2026-11-20")


@pytest.mark.django_db(transaction=True)
def test_killed_mid_way_then_rerun_ends_like_a_clean_run(s3_endpoint, bucket, settings):
    tenants, _keys, _models = _world()
    # The command runs in a second process, on this test's (committed) database.
    url = database_url() if connection.vendor == "postgresql" else f"sqlite:///{connection.settings_dict['NAME']}"
    env = {**os.environ, **CREDENTIALS, "DATABASE_URL": url, "WAREHOUSE_S3_ENDPOINT_URL": s3_endpoint}
    command = [sys.executable, "manage.py", "export_warehouse", "--bucket", bucket, "--prefix", "usage", *RANGE]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    done = [process.stdout.readline() for _ in range(3)]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert all(line.endswith(": written\n") for line in done)
    manifests = _objects(s3_endpoint, bucket, "usage/_manifests/")
    assert 3 <= len(manifests) < 16  # 8 days x 2 tenants
    # Whatever the kill cut short, a partition without its manifest holds a torn file at worst.
    torn = "usage/calls/tenant=globex/day=2026-11-27/part-0.parquet"
    assert "usage/_manifests/tenant=globex/day=2026-11-27.json" not in manifests
    _client(s3_endpoint).put_object(Bucket=bucket, Key=torn, Body=b"PAR1 cut short")
    output = _export(bucket)
    assert output.count("complete, skipped") == len(manifests)
    _export(bucket, "--prefix", "clean")  # the second --prefix wins: a clean run beside it
    resumed = {key.removeprefix("usage/"): etag for key, etag in _objects(s3_endpoint, bucket, "usage/").items()}
    clean = {key.removeprefix("clean/"): etag for key, etag in _objects(s3_endpoint, bucket, "clean/").items()}
    data = {key: etag for key, etag in clean.items() if not key.startswith("_manifests/")}
    assert len(data) == 32 and {key: resumed[key] for key in data} == data
    assert resumed.keys() == clean.keys()
    calls = sum(t.num_rows for k, t in _tables(s3_endpoint, bucket, "calls"))
    assert calls == sum(_ledger(t)["calls"] for t in tenants)
    assert django_settings.WAREHOUSE_PREFIX  # the default prefix exists for the beat
    assert CallRecord.objects.count() == 300
