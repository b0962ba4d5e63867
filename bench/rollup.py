"""Rollup benchmark on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/usage_bench_rollup \
        .venv/bin/python bench/rollup.py --calls 10000000

Generates a skewed ledger (20 tenants, the largest with about a quarter of the calls, 10 keys
each, 16 models, 90 days) with one set-based INSERT, then prints:
- the full rebuild (usage_rebuild per tenant: hourly + daily buckets) next to a bare
  INSERT .. SELECT .. GROUP BY .. ON CONFLICT DO UPDATE of the same buckets, for UTC and for
  Asia/Shanghai days;
- one day's recompute of a tenant-day with about 110k calls;
- the peak memory (max RSS) of a process that runs a full rebuild.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usageproject.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from accounts.models import ApiKey, Tenant  # noqa: E402
from usage import localtime  # noqa: E402
from usage.models import CallRecord, Model  # noqa: E402
from usage.rollups import recompute as rollups  # noqa: E402

TENANTS, KEYS_PER_TENANT, MODELS, DAYS = 20, 10, 16, 90
BURST_CALLS = 110_000


def sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def build_catalog():
    tenants = [Tenant.objects.create(slug=f"t{i:02d}", name=f"Tenant {i}") for i in range(TENANTS)]
    keys = [
        ApiKey(tenant=t, name=f"key-{j}", public_id=f"{t.slug}k{j:02d}".ljust(12, "x"), secret_hash="x" * 64)
        for t in tenants
        for j in range(KEYS_PER_TENANT)
    ]
    ApiKey.objects.bulk_create(keys)
    Model.objects.bulk_create([Model(name=f"public/model-{i:02d}") for i in range(MODELS)])
    return tenants


def generate(calls):
    """One INSERT .. SELECT generate_series: skewed tenants (u**2.16 puts ~25% on the first)."""
    tenant0 = Tenant.objects.order_by("pk").first().pk
    key0 = ApiKey.objects.order_by("pk").first().pk
    model0 = Model.objects.order_by("pk").first().pk
    sql("SELECT setseed(0.42)")
    sql(
        f"""
        INSERT INTO {CallRecord._meta.db_table}
            (tenant_id, api_key_id, model_id, occurred_at, input_tokens, output_tokens,
             cached_input_tokens, reasoning_tokens, request_id, received_at)
        SELECT %(t0)s + ti, %(k0)s + ti * %(kpt)s + floor(random() * %(kpt)s)::int,
               %(m0)s + floor(%(models)s * power(random(), 1.5))::int,
               now() - random() * interval '{DAYS} days',
               floor(random() * 4000)::int, floor(random() * 800)::int,
               CASE WHEN random() < 0.5 THEN floor(random() * 1000)::int END,
               CASE WHEN random() < 0.3 THEN floor(random() * 200)::int END,
               'b' || g, now()
        FROM (SELECT g, floor(%(tenants)s * power(random(), 2.16))::int AS ti
              FROM generate_series(1, %(calls)s) g) s
        """,
        {
            "t0": tenant0,
            "k0": key0,
            "kpt": KEYS_PER_TENANT,
            "m0": model0,
            "models": MODELS,
            "tenants": TENANTS,
            "calls": calls,
        },
    )
    sql(f"ANALYZE {CallRecord._meta.db_table}")


def bare_rebuild(zone, hourly):
    """The reference: one INSERT .. SELECT .. GROUP BY .. ON CONFLICT DO UPDATE per table."""
    sums = ("COUNT(*)", "SUM(input_tokens)", "SUM(output_tokens)", "SUM(cached_input_tokens)", "SUM(reasoning_tokens)")
    update = ", ".join(
        f"{c} = EXCLUDED.{c}"
        for c in ("calls", "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens")
    )
    columns = "tenant_id, api_key_id, model_id, {b}, calls, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens"
    if hourly:
        bucket = "occurred_at - ((occurred_at AT TIME ZONE %(z)s) - date_trunc('hour', occurred_at AT TIME ZONE %(z)s))"
        sql(
            f"""INSERT INTO usage_usagehourly ({columns.format(b="hour")})
                SELECT tenant_id, api_key_id, model_id, {bucket}, {", ".join(sums)} FROM usage_callrecord
                GROUP BY 1, 2, 3, 4 ON CONFLICT (tenant_id, hour, api_key_id, model_id) DO UPDATE SET {update}""",
            {"z": zone},
        )
    sql(
        f"""INSERT INTO usage_usagedaily ({columns.format(b="day")})
            SELECT tenant_id, api_key_id, model_id, (occurred_at AT TIME ZONE %(z)s)::date, {", ".join(sums)}
            FROM usage_callrecord GROUP BY 1, 2, 3, 4
            ON CONFLICT (tenant_id, day, api_key_id, model_id) DO UPDATE SET {update}""",
        {"z": zone},
    )


def clear_rollups():
    sql("TRUNCATE usage_usagehourly, usage_usagedaily, usage_dirtyday")


def our_rebuild():
    for tenant in Tenant.objects.exclude(slug="burst").order_by("pk"):
        rollups.usage_rebuild(tenant=tenant, chunk_days=31)


def compare(zone):
    Tenant.objects.update(timezone=zone)  # update(): no signal, no automatic rebuild
    results = {}
    for name, fn in [
        ("bare daily only", lambda: bare_rebuild(zone, hourly=False)),
        ("bare hourly+daily", lambda: bare_rebuild(zone, hourly=True)),
        ("usage_rebuild (hourly+daily)", our_rebuild),
    ]:
        clear_rollups()
        results[name] = timed(fn)
    ratio = results["usage_rebuild (hourly+daily)"] / results["bare hourly+daily"]
    for name, seconds in results.items():
        print(f"  {zone:14s} {name:30s} {seconds:8.2f} s")
    print(
        f"  {zone:14s} ratio to bare, same buckets: {ratio:.2f}x (target <= 1.5x); "
        f"to bare daily only: {results['usage_rebuild (hourly+daily)'] / results['bare daily only']:.2f}x"
    )


def burst_day():
    """A tenant-day with ~110k calls, recomputed five times: median and max."""
    tenant = Tenant.objects.create(slug="burst", name="Burst", timezone="Asia/Shanghai")
    key = ApiKey.objects.create(tenant=tenant, name="k", public_id="burstkey0000", secret_hash="x" * 64)
    model = Model.objects.first()
    sql(
        f"""INSERT INTO {CallRecord._meta.db_table} (tenant_id, api_key_id, model_id, occurred_at, input_tokens,
            output_tokens, request_id, received_at)
            SELECT %s, %s, %s + (g %% 8), '2026-03-01 16:00+00'::timestamptz + (g %% 86400) * interval '1 second',
                   g %% 3000, g %% 500, 'burst' || g, now() FROM generate_series(1, %s) g""",
        [tenant.pk, key.pk, model.pk, BURST_CALLS],
    )
    sql("ANALYZE usage_callrecord")
    day = localtime.local_day(tenant, CallRecord.objects.filter(tenant=tenant).first().occurred_at)
    times = [timed(rollups.usage_rollup_days, tenant=tenant, first_day=day, last_day=day) for _ in range(5)]
    print(
        f"  one day of {BURST_CALLS:,} calls: median {statistics.median(times) * 1000:.0f} ms, "
        f"max {max(times) * 1000:.0f} ms (target <= 250 ms)"
    )


def peak_memory():
    """Max RSS of a fresh process that rebuilds every tenant (the database does the summing)."""
    code = (
        "import django, os, resource; os.environ.setdefault('DJANGO_SETTINGS_MODULE','usageproject.settings');"
        "django.setup(); from django.core.management import call_command;"
        "call_command('rebuild_rollups', verbosity=0);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    print(f"  peak RSS of a full rebuild process: {int(out.stdout.split()[-1]) / 1024:.0f} MB (target < 200 MB)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000_000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Run against PostgreSQL: set DATABASE_URL (see the docstring).")
    call_command("flush", interactive=False, verbosity=0)
    call_command("migrate", verbosity=0)
    build_catalog()
    print(f"generating {args.calls:,} calls ...", flush=True)
    print(f"  generated in {timed(generate, args.calls):.1f} s")
    largest = CallRecord.objects.filter(tenant=Tenant.objects.order_by("pk").first()).count()
    print(f"  largest tenant: {largest:,} calls ({largest / args.calls:.0%})")
    for zone in ("UTC", "Asia/Shanghai"):
        compare(zone)
    burst_day()
    peak_memory()
    print(f"  (this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB max RSS)")


if __name__ == "__main__":
    main()
