"""A 15-minute monitor's reading from the ledger on PostgreSQL: the plan and the time (issue 27).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/usage_bench_monitors \\
        .venv/bin/python bench/monitor_window.py 400000

Migrates the database, gives one tenant ("bench-monitors", UTC) N calls, one a second back from now
(written with one INSERT ... SELECT, not through the ingestion service: only the read is measured),
5% failed, then prints the EXPLAIN ANALYZE of the window's read (it must be an index scan of
``callrecord_tenant_time`` on the month's partition only) and the median of 20 readings of an error
rate and a p95 rule over the last 15 minutes.
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usageproject.settings")
os.environ.setdefault("DEBUG", "0")

import django  # noqa: E402

INSERT = """
INSERT INTO usage_callrecord (tenant_id, api_key_id, model_id, occurred_at, input_tokens, output_tokens,
                              duration_ms, status, request_id, received_at)
SELECT %s, %s, %s, %s - g * interval '1 second', 10, 5, ((g::bigint * 7919) %% 5000)::int,
       CASE WHEN g %% 20 = 0 THEN 'error' ELSE 'ok' END, 'bench-' || g, now()
FROM generate_series(1, %s) g
"""


def main(calls: int) -> None:
    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from accounts import services
    from accounts.models import Tenant
    from usage.models import Budget, Model, Monitor
    from usage.monitors import services as monitors

    call_command("migrate", verbosity=0)
    now = timezone.now().replace(second=0, microsecond=0)
    tenant = Tenant.objects.filter(slug="bench-monitors").first()
    if tenant is None:
        tenant = services.tenant_create(slug="bench-monitors", name="Bench", timezone_name="UTC")
        key = services.api_key_create(tenant=tenant, name="k")[0]
        model, _ = Model.objects.get_or_create(name="public/bench-monitors")
        with connection.cursor() as cursor:
            cursor.execute(INSERT, [tenant.pk, key.pk, model.pk, now, calls])
            cursor.execute("ANALYZE usage_callrecord")
    budget = Budget.objects.filter(tenant=tenant).first() or Budget.objects.create(
        tenant=tenant, name="b", amount=1, currency="USD", thresholds=[100]
    )
    rules = [
        Monitor.objects.create(
            tenant=tenant, name=metric, metric=metric, threshold=1, window_minutes=15, channels=budget
        )
        for metric in ("error_rate", "latency_p95")
    ]
    start, end = monitors.monitor_window(rules[0], now)
    print(monitors._ledger_calls(rules[0], start, end).explain(analyze=True))
    for rule in rules:
        seconds = []
        for _ in range(20):
            began = time.perf_counter()
            reading = monitors.monitor_reading(rule, now)
            seconds.append(time.perf_counter() - began)
        print(
            f"{rule.metric}: {reading.value} on {reading.calls} calls; median {statistics.median(seconds) * 1000:.1f} ms"
        )
    Monitor.objects.filter(pk__in=[rule.pk for rule in rules]).delete()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400_000)
