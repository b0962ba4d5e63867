"""The partitioned ledger on PostgreSQL: foreign-key cost, admin and ledger API reads, purge of a month.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/usage_bench_ledger \\
        .venv/bin/python bench/ledger.py --fk-calls 200000 --calls 3000000

Migrates the database named by DATABASE_URL and EMPTIES its ledger. Three parts:

1. ``fk``: ``--fk-calls`` generated calls stored through the import service (``call_records_store``:
   COPY, claims, increments) in chunks of 10,000, and a bare binary COPY of the same rows, once with
   the ledger's three deferred foreign keys and once without them; calls/s of each.
2. ``reads``: ``--calls`` calls over three UTC months (the middle one about a third; 20 tenants) are
   written by one set-based INSERT, then the admin changelist of calls (first page, a tenant filter,
   an exact request id, a prefix search) and the ledger API's first page are timed (best of 3).
3. ``purge``: ``calls_purge`` of the oldest month (its partition dropped), seconds, and the batched
   deletion of that month's request-id claims, seconds.
"""

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usageproject.settings")
os.environ.setdefault("DEBUG", "0")
os.environ["ALLOWED_HOSTS"] = "testserver,localhost"

import django  # noqa: E402

FKS = [
    ("tenant_id", "accounts_tenant"),
    ("api_key_id", "accounts_apikey"),
    ("model_id", "usage_model"),
]


def setup():
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts import services
    from accounts.models import Tenant
    from usage.models import Model

    tenants = []
    for n in range(20):
        tenant = Tenant.objects.filter(slug=f"t{n}").first() or services.tenant_create(
            slug=f"t{n}", name=f"T{n}", timezone_name="UTC"
        )
        key = tenant.api_keys.first() or services.api_key_create(tenant=tenant, name="k")[0]
        tenants.append((tenant, key))
    models = [Model.objects.get_or_create(name=f"bench/m{n}")[0] for n in range(5)]
    return tenants, models


def empty_ledger(cursor):
    from usage.ledger import partitions

    cursor.execute(
        "TRUNCATE usage_callrecord, usage_callrequest, usage_usagehourly, usage_usagedaily, usage_usagedailymodel,"
        " usage_callpurge, usage_dirtyday"
    )
    for _month, name in partitions.partitions_list(cursor):
        cursor.execute(f"DROP TABLE {name}")


def set_foreign_keys(cursor, on):
    for column, target in FKS:
        name = f"usage_callrecord_{column}_fk"
        if on:
            cursor.execute(
                f"ALTER TABLE usage_callrecord ADD CONSTRAINT {name} FOREIGN KEY ({column}) REFERENCES {target} (id)"
                " DEFERRABLE INITIALLY DEFERRED"
            )
        else:
            cursor.execute(f"ALTER TABLE usage_callrecord DROP CONSTRAINT {name}")


def checked_chunks(tenants, models, count, tag, chunk=10_000):
    """The calls as CheckedCalls, chunk by chunk (encoding done here, as the import's reader thread does)."""
    from usage.ingestion import services
    from usage.ingestion.validation import validate_call

    start = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    for first in range(0, count, chunk):
        calls = []
        for n in range(first, min(first + chunk, count)):
            _tenant, key = tenants[n % len(tenants)]
            raw = {
                "request_id": f"{tag}-{n}",
                "api_key": key.public_id,
                "model": models[n % len(models)].name,
                "occurred_at": (start + dt.timedelta(seconds=n)).isoformat(),
                "input_tokens": 100 + n % 900,
                "output_tokens": 10 + n % 90,
            }
            calls.append((n, validate_call(raw)[0]))
        yield services.call_records_check(calls=calls)


def bench_fk(tenants, models, count):
    from django.db import connection

    from usage.ingestion import services
    from usage.ledger import partitions

    results = {}
    for label, on in (("with FKs", True), ("without FKs", False)):
        with connection.cursor() as cursor:
            empty_ledger(cursor)
            partitions.ledger_partitions_ahead(now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
            if not on:
                set_foreign_keys(cursor, on=False)
        chunks = list(checked_chunks(tenants, models, count, tag=label[:4]))
        started = time.perf_counter()
        for chunk in chunks:
            services.call_records_store(chunk)
        store = count / (time.perf_counter() - started)
        # Bare COPY of the same rows into the ledger (no claims, no increments), after emptying it.
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE usage_callrecord")
            started = time.perf_counter()
            copy_rows(cursor, chunks)
            bare = count / (time.perf_counter() - started)
            if not on:
                set_foreign_keys(cursor, on=True)
        results[label] = (store, bare)
        print(f"  {label:12} import service {store:>9,.0f} calls/s   bare COPY {bare:>9,.0f} calls/s", flush=True)
    return results


def copy_rows(cursor, chunks):
    columns = (
        "tenant_id, api_key_id, model_id, occurred_at, input_tokens, output_tokens, cached_input_tokens,"
        " reasoning_tokens, request_id, received_at"
    )
    now = dt.datetime.now(dt.UTC)
    with cursor.copy(f"COPY usage_callrecord ({columns}) FROM STDIN") as copy:
        for chunk in chunks:
            for row in chunk.rows:
                copy.write_row((*row.values, now))


def build_reads(cursor, tenants, models, count):
    """``count`` calls over Jan-Mar 2026 (UTC), one INSERT .. SELECT; claims for January."""
    from usage.ledger import partitions

    empty_ledger(cursor)
    for month in (1, 2, 3):
        partitions.partitions_ensure([dt.datetime(2026, month, 1, tzinfo=dt.UTC)])
    tenant_ids = [tenant.pk for tenant, _ in tenants]
    key_ids = [key.pk for _, key in tenants]
    model_ids = [model.pk for model in models]
    seconds = 90 * 86400
    cursor.execute(
        "INSERT INTO usage_callrecord (tenant_id, api_key_id, model_id, occurred_at, input_tokens, output_tokens,"
        " request_id, received_at)"
        " SELECT (%s::int8[])[n %% 20 + 1], (%s::int8[])[n %% 20 + 1], (%s::int8[])[n %% 5 + 1],"
        " timestamptz '2026-01-01' + make_interval(secs => (n::float8 * %s / %s)), 100, 10, 'req-' || n, now()"
        " FROM generate_series(0, %s - 1) AS n",
        [tenant_ids, key_ids, model_ids, seconds, count, count],
    )
    cursor.execute(
        "INSERT INTO usage_callrequest (tenant_id, request_id, occurred_at) SELECT tenant_id, request_id, occurred_at"
        " FROM usage_callrecord WHERE occurred_at < '2026-02-01'"
    )
    cursor.execute("ANALYZE usage_callrecord")
    cursor.execute("ANALYZE usage_callrequest")


def best_of(client, url, runs=3):
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
    return min(timings)


def bench_reads(tenants):
    from django.test import Client

    from accounts.models import User
    from accounts.services import access_token_create

    user = User.objects.filter(email="bench@example.com").first() or User.objects.create_superuser(
        "bench@example.com", "bench-password-123"
    )
    client = Client()
    client.force_login(user)
    tenant = tenants[3][0]
    admin = "/admin/usage/callrecord/"
    for label, url in [
        ("admin changelist, first page", admin),
        ("admin changelist, one tenant", f"{admin}?tenant__id__exact={tenant.pk}"),
        ("admin, exact request id", f"{admin}?q=req-1234567"),
        ("admin, request id prefix", f"{admin}?q=req-123456*"),
    ]:
        print(f"  {label:34} {best_of(client, url) * 1000:8.0f} ms", flush=True)
    _token, secret = access_token_create(tenant=tenant, name="bench")
    api = Client(headers={"Authorization": f"Bearer {secret}"})
    url = "/api/v1/calls?start=2026-02-01&end=2026-02-28"
    print(f"  {'ledger API, first page (Feb)':34} {best_of(api, url) * 1000:8.0f} ms", flush=True)


def bench_purge(cursor):
    from usage.ledger import retention

    cursor.execute("SELECT count(*) FROM usage_callrecord_y2026m01")
    month_calls = cursor.fetchone()[0]
    started = time.perf_counter()
    summary = retention.calls_purge(older_than_months=1, now=dt.datetime(2026, 3, 15, tzinfo=dt.UTC))  # before Feb 1
    total = time.perf_counter() - started
    assert summary.partitions == ["usage_callrecord_y2026m01"], summary
    # The planner's estimate once the month was analysed (autovacuum does), else an exact count.
    assert abs(summary.calls - month_calls) <= (month_calls // 20 if summary.estimated else 0), (summary, month_calls)
    counted = "row estimate" if summary.estimated else "exact count"
    print(
        f"  purge of 2026-01 ({month_calls:,} calls): partition dropped in {summary.seconds:.3f} s "
        f"({counted}); claims deleted window by window in {total - summary.seconds:.1f} s; total {total:.1f} s",
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fk-calls", type=int, default=200_000)
    parser.add_argument("--calls", type=int, default=3_000_000)
    parser.add_argument("--skip-fk", action="store_true")
    args = parser.parse_args()
    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("PostgreSQL only: set DATABASE_URL.")
    tenants, models = setup()
    if not args.skip_fk:
        print(f"fk: {args.fk_calls:,} calls, 20 tenants, 5 models", flush=True)
        bench_fk(tenants, models, args.fk_calls)
    with connection.cursor() as cursor:
        started = time.perf_counter()
        build_reads(cursor, tenants, models, args.calls)
        print(
            f"reads: {args.calls:,} calls over Jan-Mar 2026 built in {time.perf_counter() - started:.0f} s", flush=True
        )
    bench_reads(tenants)
    with connection.cursor() as cursor:
        bench_purge(cursor)


if __name__ == "__main__":
    main()
