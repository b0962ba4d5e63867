"""The calls explorer (/t/<slug>/calls/) on the scale database: p50/p95 per query (issue 27: p95 <= 100 ms).

PostgreSQL, in a database of its own:

    createdb -h 127.0.0.1 -U postgres usage_bench_explorer
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/usage_bench_explorer
    .venv/bin/python manage.py migrate
    .venv/bin/python bench/explorer.py generate --calls 10000000   # once: bench/dashboard.py's data set
    .venv/bin/python bench/explorer.py measure                      # ANALYZE, then the figures

``generate`` is ``bench/dashboard.py generate`` (20 tenants over 90 days, bench-00 a quarter of the
calls, Europe/Berlin; rollups rebuilt) with the performance fields on every call: a duration, a
time to first token, and 1% failed (``rate_limited``). ``measure`` times each explorer query
``--repeat`` times with Django's test client in this process (no cache, DEBUG off), after
``ANALYZE``, and prints p50/p95 and the rows the page shows.
"""

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dashboard  # noqa: E402  (sets Django up)

dashboard.INSERT_SQL = """
INSERT INTO usage_callrecord (tenant_id, api_key_id, model_id, occurred_at, input_tokens, output_tokens,
                              cached_input_tokens, reasoning_tokens, request_id, received_at,
                              duration_ms, time_to_first_token_ms, status, error_type)
SELECT %s,
       (%s::bigint[])[1 + g %% %s],
       (%s::bigint[])[1 + floor(%s * power(random(), 2))::int],
       %s::timestamptz - random() * interval '{days} days',
       (50 + random() * 3000)::bigint,
       (10 + random() * 800)::bigint,
       NULL, NULL, 'bench-' || g, now(),
       (300 + random() * random() * 30000)::int,
       (40 + random() * 1500)::int,
       CASE WHEN g %% 100 = 0 THEN 'error' ELSE 'ok' END,
       CASE WHEN g %% 100 = 0 THEN 'rate_limited' END
FROM generate_series(%s::bigint, %s::bigint) AS g
"""

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from accounts.models import ApiKey, Tenant, User  # noqa: E402
from usage.localtime import tenant_today  # noqa: E402
from usage.models import CallRecord  # noqa: E402


def queries(tenant):
    key = ApiKey.objects.filter(tenant=tenant, revoked_at__isnull=True).order_by("pk").first()
    model = "public/deepseek-r1"  # the most used model of the generated set
    day = (tenant_today(tenant) - dt.timedelta(days=1)).isoformat()
    return [
        ("first page (default range)", {}),
        ("status=error", {"status": "error"}),
        ("a key", {"api_key": key.public_id}),
        ("a model", {"model": model}),
        ("a key + a model + status=error", {"api_key": key.public_id, "model": model, "status": "error"}),
        ("slowest first, one day", {"sort": "slowest", "start": day, "end": day}),
        ("slowest first, one day, a key + a model", {"sort": "slowest", "start": day, "end": day,
                                                      "api_key": key.public_id, "model": model}),
    ]  # fmt: skip


def measure(slug, repeat):
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    tenant = Tenant.objects.get(slug=slug)
    client = Client()
    client.force_login(User.objects.get(email=dashboard.BENCH_USER))
    url = f"/t/{slug}/calls/"
    total = CallRecord.objects.count()
    mine = CallRecord.objects.filter(tenant=tenant).count()
    print(f"ledger: {total:,} calls; {slug}: {mine:,} calls ({tenant.timezone})", flush=True)
    for label, params in queries(tenant):
        for _ in range(3):
            client.get(url, params)
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get(url, params)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (label, response.status_code, response.content[:300])
        html = response.content.decode()
        rows, more = html.count("<tr data-request-id="), "more" if 'id="next-page"' in html else "last"
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(
            f"{label:42} p50 {statistics.median(times):7.1f} ms  p95 {p95:7.1f} ms  ({rows} rows, {more})",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate")
    gen.add_argument("--calls", type=int, default=10_000_000)
    mea = sub.add_parser("measure")
    mea.add_argument("--slug", default="bench-00")
    mea.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    if args.command == "generate":
        dashboard.generate(args.calls)
    else:
        measure(args.slug, args.repeat)


if __name__ == "__main__":
    main()
