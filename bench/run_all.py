"""Scale benchmark: one command, every figure side by side at each size (default 1M and 10M calls).

    .venv/bin/python bench/run_all.py                      # --sizes 1000000,10000000, about 30 min
    .venv/bin/python bench/run_all.py --sizes 100000       # a quick smoke, 2-3 min

PostgreSQL and Redis. The database (``--database-url``, default ``usage_bench_scale``; its name
must contain "bench") is dropped and created afresh; Redis databases ``--broker-db`` (9) and
``--cache-db`` (10) are flushed. The catalog is bench/dashboard.py's (20 tenants, bench-00 the
largest with a quarter of the calls, the others by 1/rank; 20 models, skewed) with 10 API keys a
tenant (200), all tenants in Asia/Shanghai, prices with a change 45 days ago. The ledger grows
to each size through the product's ingestion: ``manage.py import_calls`` on JSONL files (the
COPY path; calls over the last 90 days) and a sample through ``POST /api/v1/ingest/calls`` on
gunicorn. At each size it prints, with progress while it builds:

- import vs a bare binary COPY into the ledger (foreign keys checked, rolled back), rows/s;
- the ingestion API, calls/s (4 clients x 1,000-call batches, gunicorn 4 workers);
- the full rebuild (``rebuild_tenant`` for every tenant, run by a real Celery worker) vs the bare
  ``INSERT .. SELECT .. GROUP BY`` of the same hourly and daily buckets; one day's recompute of
  the largest tenant's busiest day; the worker's peak RSS (VmHWM of its pool process);
- dashboard endpoints p50/p95 vs bare SQL on the rollups and vs aggregating the ledger (largest
  and smallest tenant; bench/dashboard.py's ``measure_tenant``);
- the live-read figures (bench/live.py's ``measure_level``: reads while 1,000 calls/s arrive,
  freshness, 8 connections, the API under that load);
- the purge of one month (``purge_calls``' service when this checkout has it: an extra month of
  calls is imported before the 90 days and purged);
- ledger and rollup size on disk (``pg_total_relation_size`` over ``pg_partition_tree``).
"""

import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

from usage import localtime

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/usage_bench_scale"
ZONE = "Asia/Shanghai"
KEYS_PER_TENANT = 10
DAYS = 90
FILE_CALLS = 1_000_000
ROLLUP_TABLES = ("usage_usagehourly", "usage_usagedaily", "usage_usagedailymodel")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- Catalog and calls -----------------------------------------------------------------------


def build_catalog():
    """bench/dashboard.py's tenants, user and models, 10 keys a tenant, one zone, prices."""
    from accounts import services
    from accounts.models import ApiKey, Tenant
    from bench import dashboard

    dashboard._setup_catalog()
    Tenant.objects.filter(slug__startswith="bench-").update(timezone=ZONE)  # no calls yet: nothing to move
    for tenant in Tenant.objects.filter(slug__startswith="bench-"):
        for n in range(ApiKey.objects.filter(tenant=tenant).count(), KEYS_PER_TENANT):
            services.api_key_create(tenant=tenant, name=f"key-{n}")
    dashboard.add_prices()


def catalog():
    """[(tenant slug, [active key public ids], share)], [model names]: what calls are made of."""
    from accounts.models import ApiKey, Tenant
    from bench import dashboard

    tenants = []
    for tenant, share in zip(Tenant.objects.filter(slug__startswith="bench-").order_by("slug"), dashboard.tenant_shares(), strict=True):  # fmt: skip
        keys = ApiKey.objects.filter(tenant=tenant, revoked_at__isnull=True).order_by("pk")
        tenants.append((tenant.slug, list(keys.values_list("public_id", flat=True)), share))
    return tenants, list(dashboard.MODEL_NAMES)


def call_lines(count, first, tenants, models, *, end, days=DAYS, seed=0):
    """``count`` JSONL lines, request ids ``s<first>..``; tenants by share, models skewed (u^2),
    instants uniform over ``days`` before ``end`` and in time order (as a gateway's log is: a
    chunk of the import then adds to the buckets of a few hours, not of 90 days); a third report
    cached, a fifth reasoning tokens."""
    rng = random.Random(seed or first)
    weights = [share for _slug, _keys, share in tenants]
    picks = rng.choices(range(len(tenants)), weights=weights, k=count)
    span = days * 86400
    ago = sorted((rng.random() * span for _ in range(count)), reverse=True)
    for offset, (pick, seconds) in enumerate(zip(picks, ago, strict=True)):
        n = first + offset
        keys = tenants[pick][1]
        inp, out = rng.randrange(50, 3000), rng.randrange(10, 800)
        at = (end - dt.timedelta(seconds=seconds)).isoformat()
        extra = ""
        if n % 3 == 0:
            extra += f', "cached_input_tokens": {inp // 3}'
        if n % 5 == 0:
            extra += f', "reasoning_tokens": {out // 4}'
        yield (
            f'{{"request_id": "s{n}", "api_key": "{keys[n % len(keys)]}", "model": "{models[int(len(models) * rng.random() ** 2)]}",'
            f' "occurred_at": "{at}", "input_tokens": {inp}, "output_tokens": {out}{extra}}}\n'
        )


def import_calls(path, env):
    """``manage.py import_calls`` in a subprocess; returns (accepted, seconds)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", "import_calls", str(path), "--no-progress", "--json",
         "--rejects", str(path) + ".rejects"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"import_calls failed:\n{done.stderr}")
    totals = json.loads(done.stdout.strip().splitlines()[-1])
    assert totals["rejected"] == 0 and totals["duplicates"] == 0, totals
    return totals["accepted"], time.perf_counter() - started


def grow_by_import(count, first, env, workdir, *, end, days=DAYS, progress=log):
    """Import ``count`` calls in files of up to FILE_CALLS; returns (accepted, import seconds)."""
    tenants, models = catalog()
    accepted, seconds = 0, 0.0
    for start in range(first, first + count, FILE_CALLS):
        size = min(FILE_CALLS, first + count - start)
        path = Path(workdir) / f"calls-{start}.jsonl"
        with path.open("w") as out:
            out.writelines(call_lines(size, start, tenants, models, end=end, days=days))
        stored, took = import_calls(path, env)
        path.unlink()
        accepted, seconds = accepted + stored, seconds + took
        progress(f"  imported {accepted:,} / {count:,} calls ({stored / took:,.0f} calls/s this file)")
    return accepted, seconds


def api_sample(count, first, env_url, workers=4):
    """``count`` calls of the last 30 days through the ingestion API on gunicorn: calls/s."""
    from accounts import services
    from bench import ingest

    tenants, models = catalog()
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    items = [json.loads(line) for line in call_lines(count, first, tenants, models, end=now, days=30)]
    bodies = [json.dumps({"calls": items[i : i + 1000]}).encode() for i in range(0, len(items), 1000)]
    _token, secret = services.service_token_create(name=f"scale-{first}")
    args = SimpleNamespace(workers=workers, worker_class="sync", threads=1)
    os.environ["DATABASE_URL"] = env_url
    server, port = ingest.start_gunicorn(args)
    try:
        ingest.post_batches(port, secret, [b'{"calls": []}'] * 8, 4)  # imports and connections warm
        started = time.perf_counter()
        totals = ingest.post_batches(port, secret, bodies, 4)
        elapsed = time.perf_counter() - started
    finally:
        ingest.stop_gunicorn(server)
    assert totals["accepted"] == count and totals["failed"] == 0, totals
    return count / elapsed


def bare_copy(url, rows):
    """A bare binary COPY of ``rows`` calls into the ledger, foreign keys checked as it goes, then
    rolled back (the ledger is unchanged): rows/s."""
    import psycopg

    from accounts.models import ApiKey
    from bench import ingest
    from usage.models import Model

    keys = list(ApiKey.objects.filter(tenant__slug="bench-00").values_list("tenant_id", "pk"))
    model_ids = list(Model.objects.values_list("pk", flat=True))
    now = dt.datetime.now(dt.UTC)
    data = [
        (*keys[n % len(keys)], model_ids[n % len(model_ids)], now - dt.timedelta(seconds=n), 100 + n % 900,
         10 + n % 300, None, None, f"copy-ref-{n}", now)
        for n in range(rows)
    ]  # fmt: skip
    with psycopg.connect(url) as conn:
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        started = time.perf_counter()
        ingest.bench_copy(conn, data, None)  # a savepoint inside this transaction
        elapsed = time.perf_counter() - started
        conn.rollback()
    return rows / elapsed


# --- Rollups ---------------------------------------------------------------------------------


class Worker:
    """A real Celery worker (one pool process) on the bench database; its peak RSS from /proc."""

    def __init__(self, env):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "usageproject", "worker", "--concurrency=1", "--loglevel=error",
             "--without-heartbeat", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        from usageproject.celery import app

        self.app = app

    def wait_ready(self):
        deadline = time.monotonic() + 60
        while not self.app.control.ping(timeout=0.5):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                sys.exit("The Celery worker did not start")

    def wait_idle(self, timeout=3600):
        """Until the queue is empty and the worker runs nothing (tasks were all sent before)."""
        deadline = time.monotonic() + timeout
        with self.app.connection_for_write() as conn:
            client = conn.default_channel.client
            while time.monotonic() < deadline:
                inspect = self.app.control.inspect(timeout=1, limit=1)  # one worker: its answer ends the wait
                busy = any(
                    any((tasks() or {}).values()) for tasks in (inspect.active, inspect.reserved, inspect.scheduled)
                )
                if not busy and client.llen("celery") == 0:
                    return
                time.sleep(0.2)
        sys.exit("The worker did not finish in time")

    def peak_rss_mb(self):
        """VmHWM of the worker's main and pool processes, MB."""
        pids = [self.process.pid]
        pids += [
            int(pid) for pid in Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        ]
        peaks = {}
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = int(line.split()[1]) / 1024
        return max(peaks.values())

    def stop(self):
        import signal

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def bare_group_by():
    """bench/rollup.py's reference: one INSERT .. SELECT .. GROUP BY per table (hourly, daily)."""
    from bench import rollup

    rollup.clear_rollups()
    seconds = rollup.timed(rollup.bare_rebuild, ZONE, hourly=True)
    rollup.clear_rollups()
    return seconds


def worker_rebuild(worker):
    """Every tenant's full rebuild, enqueued for the worker: seconds until it is idle again."""
    from accounts.models import Tenant
    from usage.tasks import rebuild_tenant

    started = time.perf_counter()
    for tenant_id in Tenant.objects.order_by("pk").values_list("pk", flat=True):
        rebuild_tenant.delay(tenant_id)
    worker.wait_idle()
    return time.perf_counter() - started


def busiest_day(tenant):
    from django.db.models import Sum

    from usage.models import UsageDailyModel

    row = (
        UsageDailyModel.objects.filter(tenant=tenant)
        .values("day")
        .annotate(calls=Sum("calls"))
        .order_by("-calls", "day")
        .first()
    )
    return row["day"], row["calls"]


def day_recompute(tenant, day, worker, repeat=5):
    """The day recomputed ``repeat`` times here (median, max s), then once by the worker."""
    from django.db import transaction

    from usage import tasks
    from usage.rollups import recompute as rollups

    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        rollups.usage_rollup_days(tenant=tenant, first_day=day, last_day=day)
        times.append(time.perf_counter() - started)
    with transaction.atomic():
        rollups.mark_days_dirty(tenant=tenant, days=[day])
    time.sleep(tasks.DEBOUNCE_SECONDS)
    worker.wait_idle()
    return statistics.median(times), max(times)


def rollups_equal_ledger(tenant):
    """The per-model daily rollup of every day equals the ledger's GROUP BY (count and tokens)."""
    from bench import dashboard
    from usage.rollups import recompute as rollups

    bounds = rollups.ledger_day_range(tenant=tenant)
    start, end = localtime.day_span(tenant, *bounds)
    model_sql = (
        "SELECT day, model_id, SUM(calls), SUM(input_tokens), SUM(output_tokens) FROM usage_usagedailymodel"
        " WHERE tenant_id = %s AND day BETWEEN %s AND %s GROUP BY 1, 2"
    )
    ledger = dashboard._sql(dashboard.LEDGER_SQL, [tenant.timezone, tenant.pk, start, end])
    return dashboard._sql(model_sql, [tenant.pk, *bounds]) == ledger


# --- Sizes and purge -------------------------------------------------------------------------


def relation_mb(table):
    """On-disk size (with indexes and TOAST) of a table, or the sum over its partitions."""
    from django.db import connection

    with connection.cursor() as cursor:
        # pg_partition_tree lists nothing for a plain table: then the table alone.
        cursor.execute(
            "SELECT COALESCE((SELECT SUM(pg_total_relation_size(relid)) FROM pg_partition_tree(%s)),"
            " pg_total_relation_size(%s))",
            [table, table],
        )
        return cursor.fetchone()[0] / 2**20


def ledger_count():
    from usage.models import CallRecord

    return CallRecord.objects.count()


def purge_available():
    from django.core.management import get_commands

    return "purge_calls" in get_commands()


def purge_month(size, first, env, workdir):
    """An extra month of calls (the density of ``size`` over 90 days) in the calendar month before
    the one the 90 days start in, imported and then purged: (calls purged, seconds)."""
    from django.utils import timezone

    from usage.ledger import retention
    from usage.models import CallPurge, CallRecord

    now = timezone.now()
    start_month = (now - dt.timedelta(days=DAYS)).date().replace(day=1)
    month_end = dt.datetime.combine(start_month, dt.time.min, tzinfo=dt.UTC) - dt.timedelta(seconds=1)
    month_days = month_end.day
    count = size * month_days // DAYS
    grow_by_import(count, first, env, workdir, end=month_end, days=month_days - 1)
    months = (now.year - start_month.year) * 12 + now.month - start_month.month
    before = ledger_count()
    started = time.perf_counter()
    # What `purge_calls` does, with the claims deleted here and timed apart: the command hands
    # them to the worker, whose task would otherwise run into the next size's measurements.
    summary = retention.calls_purge(older_than_months=months)
    seconds = time.perf_counter() - started
    left = CallRecord.objects.filter(occurred_at__lt=dt.datetime.combine(start_month, dt.time.min, tzinfo=dt.UTC))
    result = before - ledger_count(), left.count(), round(summary.seconds, 3), round(seconds - summary.seconds, 1)
    # A benchmark-only reset: the next size imports into that month again, which the product
    # refuses once a horizon is recorded (calls before it could not be recognised as duplicates).
    CallPurge.objects.all().delete()
    return result


# --- Live reads ----------------------------------------------------------------------------------


def live_figures(url, args):
    """bench/live.py's measurement of one level, on this database and Redis databases."""
    from bench import live

    parts = urlsplit(url)
    live.PG = parts._replace(path="/").geturl()
    live.BROKER_DB, live.CACHE_DB = args.broker_db, args.cache_db
    db = parts.path.lstrip("/")
    fixtures = json.loads(live.run(ROOT, db, str(ROOT / "bench" / "live.py"), "_fixtures").strip().splitlines()[-1])
    options = SimpleNamespace(rate=args.live_rate, repeat=args.repeat, concurrency_seconds=args.live_seconds)
    return live.measure_level(ROOT, db, fixtures, options, f"scale-{time.time_ns()}", args.live_port)


# --- One level -----------------------------------------------------------------------------------


def grow_to(size, args, env, workdir, figures):
    """Import calls up to ``size`` less the API sample, then the sample through the API."""
    from django.db import connection

    sample = min(args.api_sample, max(size // 10, 100))
    grow = size - ledger_count() - sample
    if args.existing or grow <= 0:
        # --existing: the import's figure stays with the run that built the database. Small sizes:
        # the previous size's live reads (1,000 calls/s and a burst) may already have passed this one.
        grow, sample = 0, min(sample, 10_000)
        log(f"== {size:,} calls: {ledger_count():,} already there; {sample:,} through the API")
        figures["import_calls, calls/s"] = "n/a (--existing)" if args.existing else "n/a (already there)"
    else:
        log(f"== {size:,} calls: importing {grow:,}, then {sample:,} through the API")
        end = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)
        accepted, seconds = grow_by_import(grow, args.next_id, env, workdir, end=end, days=args.days)
        args.next_id += grow
        figures["import_calls, calls/s"] = round(accepted / seconds)
    figures["bare COPY into the ledger, rows/s"] = round(
        bare_copy(env["DATABASE_URL"], min(500_000, max(size // 2, 1000)))
    )
    if isinstance(figures["import_calls, calls/s"], int):
        figures["import / bare COPY"] = round(
            figures["import_calls, calls/s"] / figures["bare COPY into the ledger, rows/s"], 2
        )
    figures["ingestion API, calls/s"] = round(api_sample(sample, args.next_id, env["DATABASE_URL"], args.web_workers))
    args.next_id += sample
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    figures["ledger calls"] = ledger_count()
    log(f"  ledger: {figures['ledger calls']:,} calls; rollups next")


def rollup_figures(worker, figures):
    """The full rebuild and a day's recompute by the worker, and the worker's peak RSS."""
    from accounts.models import Tenant

    figures["full rebuild by the worker, s"] = round(worker_rebuild(worker), 1)
    figures["rebuild / bare GROUP BY"] = round(
        figures["full rebuild by the worker, s"] / figures["bare GROUP BY hourly + daily, s"], 2
    )
    day, calls = busiest_day(Tenant.objects.get(slug="bench-00"))
    median, most = day_recompute(Tenant.objects.get(slug="bench-00"), day, worker)
    figures["one day's recompute (bench-00's busiest day): calls, median ms, max ms"] = (
        calls, round(median * 1000), round(most * 1000))  # fmt: skip
    figures["worker peak RSS (rebuild + recompute), MB"] = round(worker.peak_rss_mb())


def measure_size(size, args, env, workdir, figures):
    """Grow the ledger to ``size`` and measure everything into ``figures`` ({figure: value})."""
    from django.test import Client

    from accounts.models import Tenant, User
    from bench import dashboard

    worker = Worker(env)  # starts while the calls go in; it gets work only after them
    try:
        grow_to(size, args, env, workdir, figures)
        figures["bare GROUP BY hourly + daily, s"] = round(bare_group_by(), 1)
        log(f"  bare GROUP BY: {figures['bare GROUP BY hourly + daily, s']} s")
        worker.wait_ready()
        rollup_figures(worker, figures)
    finally:
        worker.stop()
    largest = Tenant.objects.get(slug="bench-00")
    assert rollups_equal_ledger(largest), "rollups and ledger disagree"
    log(f"  rebuild {figures['full rebuild by the worker, s']} s; dashboard next")

    client = Client()
    client.force_login(User.objects.get(email=dashboard.BENCH_USER))
    tenants = sorted(Tenant.objects.filter(slug__startswith="bench-"), key=dashboard.tenant_calls)
    for tenant in (tenants[-1], tenants[0])[: 2 if args.smallest else 1]:
        for slug, range_name, name, p50, p95 in dashboard.measure_tenant(
            client, tenant, args.repeat, args.ledger_repeat
        ):
            figures[f"{slug} {range_name}: {name}, p50 / p95 ms"] = (round(p50, 1), round(p95, 1))

    if args.live:
        log("  live reads next (gunicorn, a worker, 1,000 calls/s arriving)")
        live = live_figures(env["DATABASE_URL"], args)
        for name, value in live.pop("reads").items():
            figures[f"live, bench-00 {name}, p50 / p95 ms"] = tuple(value)
        figures.update({f"live: {name}": value for name, value in live.items()})

    figures["ledger on disk, MB"] = round(relation_mb("usage_callrecord"))
    figures["rollups on disk, MB"] = round(sum(relation_mb(table) for table in ROLLUP_TABLES))
    if purge_available():
        purged, left, drop, claims = purge_month(size, args.next_id, env, workdir)
        args.next_id += size
        figures["purge of one month: calls purged, left in that month, drop s, claims cleanup s"] = (
            purged, left, drop, claims)  # fmt: skip
    else:
        figures["purge of one month"] = "n/a (purge_calls not available)"
        print("purge: n/a (purge_calls not available)", flush=True)
    figures["load average"] = round(os.getloadavg()[0], 1)


# --- Set-up and report ---------------------------------------------------------------------------


def fresh_database(url, redis_dbs):
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"--database-url must name a bench database (its name contains 'bench'), not {name!r}")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    for db in redis_dbs:
        subprocess.run(["redis-cli", "-n", str(db), "flushdb"], check=True, capture_output=True)


def environment(url, broker_db, cache_db):
    return {
        **os.environ,
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{broker_db}",
        "CACHE_URL": f"redis://127.0.0.1:6379/{cache_db}",
        "DEBUG": "0",
        "LOG_LEVEL": "ERROR",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "API_THROTTLE_RATE": "10000000/min",
        "DJANGO_SETTINGS_MODULE": "usageproject.settings",
    }


def report(results):
    sizes = list(results)
    names = list(dict.fromkeys(name for figures in results.values() for name in figures))
    print("\n## Scale: every figure at each size\n")
    print("| figure | " + " | ".join(f"{size:,} calls" for size in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for name in names:
        cells = []
        for size in sizes:
            value = results[size].get(name, "")
            if isinstance(value, (tuple, list)):
                value = " / ".join(f"{v:,}" for v in value)
            elif isinstance(value, (int, float)):
                value = f"{value:,}"
            cells.append(str(value))
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nmachine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--broker-db", type=int, default=9, help="Redis database of the broker (flushed)")
    parser.add_argument("--cache-db", type=int, default=10, help="Redis database of CACHE_URL (flushed)")
    parser.add_argument("--api-sample", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20, help="requests per endpoint")
    parser.add_argument("--ledger-repeat", type=int, default=3)
    parser.add_argument("--no-smallest", dest="smallest", action="store_false", help="dashboard: largest tenant only")
    parser.add_argument("--no-live", dest="live", action="store_false", help="skip bench/live.py's figures")
    parser.add_argument("--live-rate", type=int, default=1000)
    parser.add_argument("--live-seconds", type=int, default=10, help="seconds of each 8-connection run")
    parser.add_argument("--live-port", type=int, default=18790)
    parser.add_argument("--days", type=int, default=DAYS, help="days of history the imported calls span")
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn workers of the API sample")
    parser.add_argument(
        "--existing",
        action="store_true",
        help="measure the database of an earlier run as it is (one size, no import; a 10,000-call API sample)",
    )
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    env = environment(args.database_url, args.broker_db, args.cache_db)
    os.environ.update(env)
    if args.existing and len(sizes) != 1:
        sys.exit("--existing measures one size: give --sizes N")
    if not args.existing:
        fresh_database(args.database_url, (args.broker_db, args.cache_db))
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
    import django

    django.setup()
    if args.existing:
        # Request ids numbered from now in microseconds: past every earlier run's (they count from 0).
        args.next_id = time.time_ns() // 1000
    else:
        build_catalog()
        args.next_id = 0
    log(f"catalog: 20 tenants, 200 keys, 20 models; load average {os.getloadavg()[0]:.1f}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as workdir:
        for size in sizes:
            results[size] = {}
            try:
                measure_size(size, args, env, workdir, results[size])
            finally:  # what was measured before a failure is kept
                log(f"{size:,}: {json.dumps(results[size])}")
                (ROOT / "artifacts").mkdir(exist_ok=True)
                (ROOT / "artifacts" / "scale.json").write_text(
                    json.dumps({str(k): v for k, v in results.items()}, indent=1)
                )
    report(results)


if __name__ == "__main__":
    main()
