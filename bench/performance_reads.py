"""Reads of the performance API, the Performance view and the calls explorer with N calls today (issue 27).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/usage_bench_reads \\
        .venv/bin/python bench/performance_reads.py 300000

Migrates the database, tops one tenant ("bench", UTC, 8 keys, 4 models) up to N calls today through
the ingestion service (every call with duration, time to first token and status; 1% rate limited),
then times each read 20 times with Django's test client in this process (no cache, no server).
Run ``ANALYZE`` after a large top-up: the planner otherwise keeps the empty table's statistics.
"""

import datetime as dt
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usageproject.settings")
os.environ.setdefault("DEBUG", "0")

import django  # noqa: E402

READS = (
    ("API day", "/api/v1/usage/performance", {}),
    ("API hour by key", "/api/v1/usage/performance", {"bucket": "hour", "group_by": "api_key"}),
    ("page Performance view", "/t/bench/usage/", {"view": "performance"}),
    ("explorer first page", "/t/bench/calls/", {}),
    ("explorer errors", "/t/bench/calls/", {"status": "error"}),
    ("explorer slowest", "/t/bench/calls/", {"sort": "slowest"}),
)


def cast():
    from accounts import services
    from accounts.models import ApiKey, Membership, Tenant, User

    tenant = Tenant.objects.filter(slug="bench").first()
    if tenant is None:
        tenant = services.tenant_create(slug="bench", name="Bench", timezone_name="UTC")
        for number in range(8):
            services.api_key_create(tenant=tenant, name=f"k{number}")
        user = User.objects.create_user("bench@example.test", "pw-bench-123456")
        Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.OWNER)
    return tenant, list(ApiKey.objects.filter(tenant=tenant).order_by("pk"))


def item(rng, number, key, at):
    output = rng.randrange(1, 2000)
    ttft = int(rng.lognormvariate(6, 0.6))
    fields = {"duration_ms": ttft + output * rng.randrange(8, 30), "time_to_first_token_ms": ttft, "status": "ok"}
    if number % 100 == 0:
        fields.update(status="error", error_type="rate_limited")
    return {
        "request_id": f"r{number}",
        "api_key": key.public_id,
        "model": f"public/m{(number // 7) % 4}",
        "occurred_at": at.isoformat(),
        "input_tokens": rng.randrange(1, 8000),
        "output_tokens": output,
        **fields,
    }


def top_up(tenant, keys, wanted, now):
    from usage.ingestion.services import call_records_ingest
    from usage.models import CallRecord

    rng = random.Random(1)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    have = CallRecord.objects.filter(tenant=tenant).count()
    batch = []
    for number in range(have, wanted):
        batch.append(item(rng, number, keys[number % len(keys)], midnight + (now - midnight) * rng.random()))
        if len(batch) == 1000 or number == wanted - 1:
            call_records_ingest(items=batch, now=now)
            batch = []
    return CallRecord.objects.filter(tenant=tenant).count()


def main():
    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from accounts.models import User

    call_command("migrate", verbosity=0)
    now = dt.datetime.now(dt.UTC)
    tenant, keys = cast()
    print("calls today:", top_up(tenant, keys, int(sys.argv[1]), now), flush=True)
    client = Client()
    client.force_login(User.objects.get(email="bench@example.test"))
    today = now.date().isoformat()
    for label, url, params in READS:
        times = []
        for _ in range(20):
            started = time.perf_counter()
            response = client.get(url, {"start": today, **params})
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (label, response.status_code)
        times.sort()
        p95 = times[int(0.95 * len(times)) - 1]
        print(f"{label:24} p50 {statistics.median(times):7.1f} ms  p95 {p95:7.1f} ms", flush=True)


if __name__ == "__main__":
    main()
