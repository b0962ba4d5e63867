"""Ingestion benchmark on PostgreSQL: the API through gunicorn, the import command, and two bare references.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/usage_bench_ingest \\
        .venv/bin/python bench/ingest.py --calls 1000000

Creates the database if it is missing and migrates it. The same N generated calls (one tenant,
8 keys, 4 models, spread over the last 20 days, in time order like a gateway's stream) go into an
empty ``usage_callrecord`` five ways, and the calls/s of each are printed:

- ``copy``: one bare binary COPY of the rows into the table (reference);
- ``executemany``: bare ``INSERT .. ON CONFLICT DO NOTHING`` through psycopg's executemany,
  1,000 rows a batch, a commit per batch (reference);
- ``import``: ``manage.py import_calls`` on a JSONL file of the calls (a subprocess, start-up included);
- ``api``: ``--clients`` threads posting pre-serialised batches of ``--batch`` calls to
  ``/api/v1/ingest/calls`` on a gunicorn started here on 127.0.0.1 (``--workers`` sync workers).

Every phase is checked: the table holds exactly N calls afterwards. Only loopback traffic; every
loop is bounded by the number of calls.

Celery gets a Redis broker (``CELERY_BROKER_URL``, default database 13 on 127.0.0.1:6379, purged
at the end) as in a deployment: ingestion enqueues the debounced rollup, a worker (not started
here) would run it. Without a broker the embedded default runs each rollup inside the request.
"""

import argparse
import datetime as dt
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usageproject.settings")
os.environ.setdefault("DEBUG", "0")  # no query log in this process nor in gunicorn
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/13")

import django  # noqa: E402
import psycopg  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/usage_bench_ingest"
KEYS = 8
MODELS = 4
COLUMNS = (
    "tenant_id, api_key_id, model_id, occurred_at, input_tokens, output_tokens,"
    " cached_input_tokens, reasoning_tokens, request_id, received_at"
)
TYPES = ["int8", "int8", "int8", "timestamptz", "int8", "int8", "int8", "int8", "text", "timestamptz"]


def ensure_database(url):
    """CREATE DATABASE if needed, then migrate, in a subprocess with this DATABASE_URL."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, check=True, env=os.environ)


def setup_fixtures():
    """A tenant, its keys, listed models and a service token; returns ids and the token's secret."""
    from accounts import services
    from accounts.models import ApiKey, ServiceToken, Tenant
    from usage.models import Model

    tenant = Tenant.objects.filter(slug="bench").first() or services.tenant_create(
        slug="bench", name="Bench", timezone_name="Europe/Berlin"
    )
    keys = list(ApiKey.objects.filter(tenant=tenant).order_by("id"))
    for i in range(len(keys), KEYS):
        keys.append(services.api_key_create(tenant=tenant, name=f"bench-{i}")[0])
    models = [Model.objects.get_or_create(name=f"bench/model-{i}")[0] for i in range(MODELS)]
    ServiceToken.objects.filter(name="bench").delete()
    _token, secret = services.service_token_create(name="bench")
    return tenant, keys, models, secret


def generate(n, tenant, keys, models, performance=False):
    """The N calls as COPY tuples and as API items (deterministic, in time order); with
    ``performance`` the API items also carry duration, time to first token and status (1% failed)."""
    rng = random.Random(20250101)
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=20)
    step = dt.timedelta(days=19) / n
    rows, items = [], []
    for i in range(n):
        key, model = keys[i % KEYS], models[(i // 7) % MODELS]
        occurred_at = start + step * i
        inp, out = rng.randrange(1, 8000), rng.randrange(1, 2000)
        # Providers count cached tokens inside input and reasoning inside output (ingestion checks it).
        cached = rng.randrange(0, inp + 1) if i % 3 == 0 else None
        reasoning = rng.randrange(0, out + 1) if i % 5 == 0 else None
        request_id = f"bench-{i:09d}"
        rows.append((tenant.pk, key.pk, model.pk, occurred_at, inp, out, cached, reasoning, request_id, now))
        item = {
            "request_id": request_id,
            "api_key": key.public_id,
            "model": model.name,
            "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"),
            "input_tokens": inp,
            "output_tokens": out,
        }
        if cached is not None:
            item["cached_input_tokens"] = cached
        if reasoning is not None:
            item["reasoning_tokens"] = reasoning
        if performance:
            item.update(_performance(rng, i, out))
        items.append(item)
    return rows, items


def _performance(rng, i, out):
    ttft = int(rng.lognormvariate(6, 0.6))
    fields = {"duration_ms": ttft + out * rng.randrange(8, 30), "time_to_first_token_ms": ttft, "status": "ok"}
    if i % 100 == 0:
        fields.update(status="error", error_type=rng.choice(["rate_limited", "timeout", "server_error"]))
    return fields


def reset(conn):
    conn.execute("TRUNCATE usage_callrecord, usage_dirtyday")
    if conn.execute("SELECT to_regclass('usage_callrequest')").fetchone()[0]:  # the request-id claims
        conn.execute("TRUNCATE usage_callrequest")
    conn.execute("VACUUM ANALYZE accounts_apikey, accounts_tenant, usage_model")
    conn.execute("CHECKPOINT")


def count(conn):
    return conn.execute("SELECT count(*) FROM usage_callrecord").fetchone()[0]


def bench_copy(conn, rows, _args):
    with (
        conn.transaction(),
        conn.cursor().copy(f"COPY usage_callrecord ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(TYPES)
        for row in rows:
            copy.write_row(row)


def bench_executemany(conn, rows, _args):
    sql = f"INSERT INTO usage_callrecord ({COLUMNS}) VALUES ({', '.join(['%s'] * 10)}) ON CONFLICT (tenant_id, request_id) DO NOTHING"
    cursor = conn.cursor()
    for start in range(0, len(rows), 1000):
        with conn.transaction():
            cursor.executemany(sql, rows[start : start + 1000])


def bench_import(_conn, rows, args):
    cmd = [sys.executable, "manage.py", "import_calls", str(args.jsonl), "--no-progress", "--json"]
    cmd += ["--rejects", str(args.jsonl.with_suffix(".rejects.jsonl")), "--batch-size", str(args.import_batch)]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, env=os.environ).stdout
    totals = json.loads(out.strip().splitlines()[-1])
    assert totals["accepted"] == len(rows) and totals["rejected"] == 0, totals


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(args):
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "gunicorn"), "usageproject.wsgi:application"]
    cmd += ["--bind", f"127.0.0.1:{port}", "--workers", str(args.workers), "--worker-class", args.worker_class]
    cmd += ["--threads", str(args.threads), "--keep-alive", "30", "--log-level", "warning"]
    server = subprocess.Popen(cmd, cwd=ROOT, env=os.environ, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            time.sleep(0.2)
    stop_gunicorn(server)
    raise SystemExit("gunicorn did not start within 30 s")


def stop_gunicorn(server):
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def post_batches(port, secret, bodies, clients):
    """``clients`` threads, each on a keep-alive connection, take the next body until none is left."""
    lock = threading.Lock()
    position = iter(range(len(bodies)))
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0, "failed": 0}
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                break
            conn.request("POST", "/api/v1/ingest/calls", body=bodies[index], headers=headers)
            response = conn.getresponse()
            body = response.read()
            with lock:
                if response.status != 200:
                    totals["failed"] += 1
                    continue
                result = json.loads(body)
                for name in ("accepted", "duplicates", "rejected"):
                    totals[name] += result[name]
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return totals


def bench_api(_conn, rows, args):
    server, port = start_gunicorn(args)
    try:
        # Warm up each worker's imports and connection outside the clock with an empty batch.
        post_batches(port, args.secret, [b'{"calls": []}'] * args.workers * 4, args.clients)
        started = time.perf_counter()
        totals = post_batches(port, args.secret, args.bodies, args.clients)
        elapsed = time.perf_counter() - started
    finally:
        stop_gunicorn(server)
    assert totals["accepted"] == len(rows) and totals["failed"] == 0, totals
    return elapsed


PHASES = {"copy": bench_copy, "executemany": bench_executemany, "import": bench_import, "api": bench_api}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker-class", default="sync")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--import-batch", type=int, default=10_000)
    parser.add_argument("--phases", default="copy,executemany,import,api")
    parser.add_argument("--performance", action="store_true", help="calls carry duration, TTFT and status")
    args = parser.parse_args()
    url = os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    if not url.startswith("postgres"):
        sys.exit("The ingestion benchmark runs on PostgreSQL: set DATABASE_URL.")
    ensure_database(url)
    django.setup()
    tenant, keys, models, args.secret = setup_fixtures()
    print(f"load average before: {os.getloadavg()}", flush=True)

    print(f"generating {args.calls:,} calls ...", flush=True)
    rows, items = generate(args.calls, tenant, keys, models, performance=args.performance)
    args.bodies = [json.dumps({"calls": items[i : i + args.batch]}).encode() for i in range(0, len(items), args.batch)]
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        args.jsonl = Path(tmp) / "calls.jsonl"
        with args.jsonl.open("w") as handle:
            handle.writelines(json.dumps(item) + "\n" for item in items)
        del items
        results = run_phases(url, rows, args)
    print(f"load average after: {os.getloadavg()}", flush=True)
    purge_broker()
    report(results, args)


def purge_broker():
    """Drop the rollup tasks the phases enqueued: no worker will run them."""
    from usageproject.celery import app

    app.control.purge()


def run_phases(url, rows, args):
    results = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for name in args.phases.split(","):
            reset(conn)
            started = time.perf_counter()
            elapsed = PHASES[name](conn, rows, args)
            elapsed = elapsed or time.perf_counter() - started
            assert count(conn) == len(rows), f"{name}: {count(conn)} rows instead of {len(rows)}"
            results[name] = len(rows) / elapsed
            print(f"{name:12} {elapsed:8.2f} s  {results[name]:>10,.0f} calls/s", flush=True)
        reset(conn)
    return results


def report(results, args):
    print()
    print(
        f"{args.calls:,} calls; API: {args.clients} clients x {args.batch}-call batches, "
        f"gunicorn {args.workers} x {args.worker_class} worker(s) x {args.threads} thread(s)"
    )
    if "copy" in results and "import" in results:
        print(f"import / bare COPY:                {results['import'] / results['copy']:.2f}  (target >= 0.5)")
    if "executemany" in results and "api" in results:
        print(f"API / bare executemany ON CONFLICT: {results['api'] / results['executemany']:.2f}  (target >= 0.5)")
    if "api" in results:
        print(f"API calls/s:                        {results['api']:,.0f}  (target >= 20,000)")


if __name__ == "__main__":
    main()
