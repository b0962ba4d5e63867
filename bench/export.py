"""CSV export benchmark: 90 days x 50 keys x 20 models starts at once, memory stays flat.

    createdb -h 127.0.0.1 -U postgres usage_bench_export
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/usage_bench_export .venv/bin/python bench/export.py

Fills the daily rollups of one tenant (every day x key x model has usage: 90,000 rows), then
streams the export through the same view code the API and the page use, and prints the time
to the first data row, the total time, and the peak Python memory of 9-, 30- and 90-day exports.
"""

import datetime as dt
import os
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usageproject.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from accounts.models import ApiKey, Tenant  # noqa: E402
from usage.models import Model, UsageDaily  # noqa: E402
from usage.reporting.export import export_response  # noqa: E402
from usage.reporting.periods import Period  # noqa: E402
from usage.reporting.selectors import UsageFilters  # noqa: E402

DAYS, KEYS, MODELS = 90, 50, 20
LAST_DAY = dt.date(2026, 11, 28)


def fill():
    tenant = Tenant.objects.create(slug="bench", name="Bench", timezone="Europe/Berlin")
    keys = ApiKey.objects.bulk_create(
        ApiKey(tenant=tenant, name=f"key-{n:02d}", public_id=f"benchkey{n:04d}", secret_hash="x" * 64)
        for n in range(KEYS)
    )
    models = Model.objects.bulk_create(Model(name=f"bench/model-{n:02d}") for n in range(MODELS))
    for offset in range(DAYS):
        day = LAST_DAY - dt.timedelta(days=offset)
        UsageDaily.objects.bulk_create(
            UsageDaily(tenant=tenant, day=day, api_key=k, model=m, calls=3, input_tokens=900, output_tokens=300)
            for k in keys
            for m in models
        )
    return tenant


def stream(tenant, days):
    """(seconds to the first data row, seconds in all, rows, peak traced bytes)."""
    filters = UsageFilters(Period(LAST_DAY - dt.timedelta(days=days - 1), LAST_DAY))
    tracemalloc.start()
    start = time.perf_counter()
    chunks = iter(export_response(tenant=tenant, filters=filters).streaming_content)
    next(chunks)  # the header
    next(chunks)
    first = time.perf_counter() - start
    rows = 1 + sum(1 for _ in chunks)
    total = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return first, total, rows, peak


def main():
    if connection.vendor != "postgresql":
        sys.exit("Run against PostgreSQL: set DATABASE_URL (see the docstring).")
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    tenant = fill()
    for days in (9, 30, DAYS):
        first, total, rows, peak = stream(tenant, days)
        print(
            f"{days:3d} days: {rows:7,} rows, first row {first * 1000:6.1f} ms, all {total:5.1f} s, peak {peak / 1e6:5.1f} MB"
        )


if __name__ == "__main__":
    main()
