"""Dashboard benchmark: server time of the Usage Statistics page and its data endpoints.

PostgreSQL only, in a database of its own (it fills the ledger with millions of calls):

    createdb -h 127.0.0.1 -U postgres usage_bench_dash
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/usage_bench_dash
    .venv/bin/python manage.py migrate
    .venv/bin/python bench/dashboard.py generate --calls 10000000   # once: ledger + rollups
    .venv/bin/python bench/dashboard.py prices                       # once: prices, so cost is shown
    .venv/bin/python bench/dashboard.py measure                      # prints the figures

``measure`` times, for the largest and the smallest tenant and for "Last 2 weeks" and 90 days,
the page and every data endpoint (through Django's test client, so middleware and templates
count), next to the same answer from one bare SQL query on the rollups and from aggregating the
ledger directly, then the first render of the page in headless Chromium.
"""

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
import uuid
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usageproject.settings")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
# Server time as in production: without DEBUG's per-query logging and template debug data.
os.environ.setdefault("DEBUG", "0")

import django  # noqa: E402

django.setup()

from django.core.cache import cache  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts import services  # noqa: E402
from accounts.models import Membership, Tenant, User  # noqa: E402
from usage import localtime  # noqa: E402
from usage.models import Model  # noqa: E402
from usage.rollups import recompute as rollups  # noqa: E402

TENANTS = 20
DAYS = 90
KEYS_PER_TENANT = 8
CHUNK = 1_000_000
MODEL_NAMES = [
    "public/deepseek-r1",
    "public/deepseek-v3",
    "public/qwen3-235b",
    "public/qwen3-32b",
    "public/qwen2.5-coder-32b",
    "public/llama-3.3-70b",
    "public/llama-3.1-8b",
    "public/mistral-large",
    "public/mixtral-8x22b",
    "public/gemma-3-27b",
    "public/glm-4.5",
    "public/kimi-k2",
    "public/phi-4",
    "public/command-r-plus",
    "public/yi-large",
    "public/internlm3-8b",
    "public/minimax-m1",
    "public/baichuan4",
    "public/ernie-4.5",
    "public/hunyuan-large",
]
ZONES = ["Europe/Berlin", "Asia/Kolkata", "America/New_York", "UTC", "Asia/Shanghai"]
BENCH_USER = "bench@example.test"

INSERT_SQL = """
INSERT INTO usage_callrecord (tenant_id, api_key_id, model_id, occurred_at, input_tokens, output_tokens,
                              cached_input_tokens, reasoning_tokens, request_id, received_at)
SELECT %s,
       (%s::bigint[])[1 + g %% %s],
       (%s::bigint[])[1 + floor(%s * power(random(), 2))::int],
       %s::timestamptz - random() * interval '{days} days',
       (50 + random() * 3000)::bigint,
       (10 + random() * 800)::bigint,
       NULL, NULL, 'bench-' || g, now()
FROM generate_series(%s::bigint, %s::bigint) AS g
"""


def tenant_shares():
    """The largest tenant has a quarter of the calls; the others share the rest by 1/rank."""
    weights = [1 / rank for rank in range(2, TENANTS + 1)]
    rest = [0.75 * weight / sum(weights) for weight in weights]
    return [0.25, *rest]


def _setup_catalog():
    user, _ = services.user_get_or_create(email=BENCH_USER, password="bench-password-123")
    models = [Model.objects.get_or_create(name=name)[0].pk for name in MODEL_NAMES]
    tenants = []
    for index in range(TENANTS):
        tenant = services.tenant_create(
            slug=f"bench-{index:02d}", name=f"Bench {index:02d}", timezone_name=ZONES[index % 5]
        )
        services.membership_set(tenant=tenant, user=user, role=Membership.Role.VIEWER)
        keys = [services.api_key_create(tenant=tenant, name=f"key-{k}")[0] for k in range(KEYS_PER_TENANT)]
        services.credential_revoke(keys[-1])
        tenants.append((tenant, [key.pk for key in keys]))
    return tenants, models


def generate(calls):
    if Tenant.objects.filter(slug__startswith="bench-").exists():
        sys.exit("Bench tenants exist already; use a fresh database.")
    tenants, models = _setup_catalog()
    end = timezone.now()
    sql = INSERT_SQL.format(days=DAYS)
    first = 1
    started = time.perf_counter()
    for (tenant, keys), share in zip(tenants, tenant_shares(), strict=True):
        count = int(calls * share)
        for chunk_first in range(first, first + count, CHUNK):
            chunk_last = min(chunk_first + CHUNK, first + count) - 1
            with connection.cursor() as cursor:
                cursor.execute(sql, [tenant.pk, keys, len(keys), models, len(models), end, chunk_first, chunk_last])
        first += count
        print(f"{tenant.slug}: {count:,} calls ({time.perf_counter() - started:.0f} s)", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE usage_callrecord")
    for tenant, _keys in tenants:
        rollups.usage_rebuild(tenant=tenant)
        print(f"{tenant.slug}: rollups rebuilt ({time.perf_counter() - started:.0f} s)", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE usage_usagedaily")
        cursor.execute("ANALYZE usage_usagehourly")
    print(f"generated {first - 1:,} calls in {time.perf_counter() - started:.0f} s")


def add_prices():
    """A platform price per model since 2020 and a price change 45 days ago: the page then costs
    every day x key x model line, and the 90-day range spans the change. Idempotent."""
    from decimal import Decimal

    from usage.models import ModelPrice

    change = timezone.now().date() - dt.timedelta(days=45)
    added = 0
    for index, model in enumerate(Model.objects.filter(name__in=MODEL_NAMES).order_by("name")):
        base = Decimal(index + 1) / 1000
        for effective_from, factor in ((dt.date(2020, 1, 1), 1), (change, Decimal("0.8"))):
            _, created = ModelPrice.objects.get_or_create(
                model=model,
                tenant=None,
                effective_from=effective_from,
                defaults={"input_per_1k": base * factor, "output_per_1k": base * 4 * factor},
            )
            added += created
    print(f"prices: {added} added, {ModelPrice.objects.count()} in all")


# --- Measure -------------------------------------------------------------------------------

ENDPOINTS = {
    "page": "usage:dashboard",
    "data": "usage:data",
    "trend": "usage:chart_trend",
    "distribution": "usage:chart_distribution",
}
ROLLUP_SQL = """
SELECT day, model_id, SUM(calls), SUM(input_tokens), SUM(output_tokens) FROM usage_usagedaily
WHERE tenant_id = %s AND day BETWEEN %s AND %s GROUP BY day, model_id
"""
LEDGER_SQL = """
SELECT (occurred_at AT TIME ZONE %s)::date, model_id, COUNT(*), SUM(input_tokens), SUM(output_tokens)
FROM usage_callrecord WHERE tenant_id = %s AND occurred_at >= %s AND occurred_at < %s GROUP BY 1, 2
"""


def timed(function, repeat):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def percentiles(times):
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _sql(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return sorted(cursor.fetchall())


def _ranges(tenant):
    today = timezone.now().astimezone(tenant.tz).date()
    first = today - dt.timedelta(days=DAYS - 1)
    return {
        "Last 2 weeks": ({"preset": "last_2_weeks"}, today - dt.timedelta(days=13), today),
        f"{DAYS} days": ({"preset": "custom", "start": first.isoformat(), "end": today.isoformat()}, first, today),
    }


def measure_tenant(client, tenant, repeat, ledger_repeat):
    rows = []
    for range_name, (params, first, last) in _ranges(tenant).items():
        for name, url_name in ENDPOINTS.items():
            url = reverse(url_name, kwargs={"slug": tenant.slug})
            timed(partial(client.get, url, params), 3)  # warm caches and connections
            times, response = timed(partial(client.get, url, params), repeat)
            assert response.status_code == 200, response.status_code
            rows.append((tenant.slug, range_name, name, *percentiles(times)))
        rollup_times, rollup_answer = timed(lambda f=first, la=last: _sql(ROLLUP_SQL, [tenant.pk, f, la]), repeat)
        start, end = localtime.day_span(tenant, first, last)
        ledger_times, ledger_answer = timed(
            lambda s=start, e=end: _sql(LEDGER_SQL, [tenant.timezone, tenant.pk, s, e]), ledger_repeat
        )
        assert rollup_answer == ledger_answer, "rollups and ledger disagree"
        rows.append((tenant.slug, range_name, "bare SQL on rollups", *percentiles(rollup_times)))
        rows.append((tenant.slug, range_name, "ledger aggregation", *percentiles(ledger_times)))
    return rows


def measure_live(client, tenant, repeat):
    """Page and Refresh, 90 days, when the caches help less: while calls arrive today (before each
    request today's dirty mark gets a fresh token, as an ingested batch does: today is read from
    the ledger and every cache that covers it misses; the closed days' grids are still reused),
    and with an empty cache (everything computed from the rollups and costed afresh)."""
    from usage.models import DirtyDay

    params, _first, today = _ranges(tenant)[f"{DAYS} days"]
    rows = []
    for name in ("page", "data"):
        url = reverse(ENDPOINTS[name], kwargs={"slug": tenant.slug})
        times = []
        for _ in range(repeat):
            DirtyDay.objects.update_or_create(tenant=tenant, day=today, defaults={"token": uuid.uuid4().hex})
            started = time.perf_counter()
            response = client.get(url, params)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.status_code
        rows.append((tenant.slug, f"{DAYS} days, calls arriving today", name, *percentiles(times)))
    rollups.usage_rollup_dirty(tenant=tenant)  # today clean again
    for name in ("page", "data"):
        url = reverse(ENDPOINTS[name], kwargs={"slug": tenant.slug})
        times = []
        for _ in range(repeat):
            cache.clear()  # as after a deploy, or a recompute of every day in range
            started = time.perf_counter()
            response = client.get(url, params)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.status_code
        rows.append((tenant.slug, f"{DAYS} days, empty cache", name, *percentiles(times)))
    return rows


def tenant_calls(tenant):
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(SUM(calls), 0) FROM usage_usagedaily WHERE tenant_id = %s", [tenant.pk])
        return cursor.fetchone()[0]


def first_render(tenant, repeat=5, port=8765):
    """Navigation start to both charts drawn (dashboard.js stamps data-rendered), in headless Chromium."""
    from playwright.sync_api import sync_playwright

    from tests.browser.chromium import CHROMIUM_ARGS

    client = Client()
    client.force_login(User.objects.get(email=BENCH_USER))
    cookie = {"name": "sessionid", "value": client.cookies["sessionid"].value, "domain": "127.0.0.1", "path": "/"}
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env={**os.environ, "DEBUG": "1"},  # runserver serves the static files (no collectstatic here)
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context()
            context.add_cookies([cookie])
            times = []
            for _ in range(repeat + 1):
                page = context.new_page()
                page.goto(f"http://127.0.0.1:{port}/t/{tenant.slug}/usage/")
                page.wait_for_function("document.getElementById('dashboard').dataset.rendered")
                times.append(
                    page.evaluate(
                        "Number(document.getElementById('dashboard').dataset.rendered) - performance.timeOrigin"
                    )
                )
                page.close()
            browser.close()
        return times[1:]  # the first load also fills the browser's static cache
    finally:
        server.terminate()
        server.wait()


def measure(repeat=40, ledger_repeat=5):
    tenants = sorted(Tenant.objects.filter(slug__startswith="bench-"), key=tenant_calls, reverse=True)
    largest, small = tenants[0], tenants[-1]
    client = Client()
    client.force_login(User.objects.get(email=BENCH_USER))
    total = sum(tenant_calls(tenant) for tenant in tenants)
    print(
        f"ledger: {total:,} calls, {len(tenants)} tenants; largest {largest.slug} {tenant_calls(largest):,}, small {small.slug} {tenant_calls(small):,}"
    )
    print(
        f"server time in ms over {repeat} requests (ledger: {ledger_repeat} runs); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
    )
    print("| tenant | range | what | p50 ms | p95 ms |\n|---|---|---|---:|---:|")
    results = {}
    for tenant in (largest, small):
        for slug, range_name, name, p50, p95 in measure_tenant(client, tenant, repeat, ledger_repeat):
            results[(slug, range_name, name)] = (p50, p95)
            print(f"| {slug} | {range_name} | {name} | {p50:.1f} | {p95:.1f} |", flush=True)
    for slug, range_name, name, p50, p95 in measure_live(client, largest, repeat):
        print(f"| {slug} | {range_name} | {name} | {p50:.1f} | {p95:.1f} |", flush=True)
    ledger_p50 = results[(largest.slug, f"{DAYS} days", "ledger aggregation")][0]
    print(f"\nlargest tenant, {DAYS} days: ledger aggregation p50 / endpoint p50")
    for name in ENDPOINTS:
        p50, p95 = results[(largest.slug, f"{DAYS} days", name)]
        print(f"  {name}: {ledger_p50 / p50:.0f}x faster (p95 {p95:.1f} ms, target <= 50 ms)")
    print(f"load average now {os.getloadavg()[0]:.1f}")
    renders = first_render(largest)
    print(
        f"\nfirst render in Chromium, largest tenant, Last 2 weeks: median {statistics.median(renders):.0f} ms, max {max(renders):.0f} ms (target <= 1500 ms)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="fill the ledger and rebuild the rollups")
    gen.add_argument("--calls", type=int, default=10_000_000)
    sub.add_parser("prices", help="add platform prices with a price change (idempotent)")
    sub.add_parser("measure", help="print the timings")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Set DATABASE_URL to a dedicated PostgreSQL database (see the docstring).")
    if args.command == "generate":
        generate(args.calls)
    elif args.command == "prices":
        add_prices()
    else:
        measure()


if __name__ == "__main__":
    main()
