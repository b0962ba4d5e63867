"""The shared cache's size while calls arrive (issue 25, item 5).

    .venv/bin/python bench/cache_growth.py                 # this checkout
    .venv/bin/python bench/cache_growth.py --seconds 20 --readers 8 --rate 1000

PostgreSQL and a private redis-server (started here on a free loopback port, as the cache only,
and stopped at the end). The database (``--database-url``, default ``usage_bench_cache``; its
name must contain "bench") is created and migrated if missing. One tenant with a day of history
(``--history`` calls yesterday); then for ``--seconds``, in this process, a feeder stores
``--rate`` calls/s for today through ``call_records_ingest`` (batches of 100) while ``--readers``
threads read the Usage Statistics page's data endpoint (Last 2 weeks) as the tenant's owner.
Prints the reads done and the cache's keys and bytes (``MEMORY USAGE`` summed) at the end, and
the largest entry. Run it in another checkout for a before/after.
"""

import argparse
import datetime as dt
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path.cwd()
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usageproject.settings")
os.environ.setdefault("DEBUG", "0")
os.environ.pop("CELERY_BROKER_URL", None)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/usage_bench_cache"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis() -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("redis-server did not start")


def items(keys, model, prefix: str, count: int, at: dt.datetime) -> list[dict]:
    return [
        {
            "request_id": f"{prefix}-{i}",
            "api_key": keys[i % len(keys)].public_id,
            "model": model.name,
            "occurred_at": at.isoformat(),
            "input_tokens": 100,
            "output_tokens": 10,
        }
        for i in range(count)
    ]


def feed(keys, model, rate: int, stop: threading.Event, fed: list[int]) -> None:
    from django.db import connection

    from usage.ingestion.services import call_records_ingest

    run = time.time_ns()
    started = time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - started) * rate)
        if fed[0] >= due:
            time.sleep(0.01)
            continue
        call_records_ingest(items=items(keys, model, f"live-{run}-{fed[0]}", 100, dt.datetime.now(dt.UTC)))
        fed[0] += 100
    connection.close()


def read(user, url: str, stop: threading.Event, reads: list[int]) -> None:
    from django.db import connection
    from django.test import Client

    client = Client()
    client.force_login(user)
    while not stop.is_set():
        assert client.get(url, {"preset": "last_2_weeks"}).status_code == 200
        reads[0] += 1
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--history", type=int, default=20_000)
    args = parser.parse_args()
    if "bench" not in args.database_url.rsplit("/", 1)[-1]:
        raise SystemExit("The database name must contain 'bench'")
    redis_process, port = start_redis()
    os.environ.update(DATABASE_URL=args.database_url, CACHE_URL=f"redis://127.0.0.1:{port}/0")
    try:
        run(args, port)
    finally:
        redis_process.terminate()
        redis_process.wait(timeout=10)


def run(args: argparse.Namespace, port: int) -> None:
    import django
    import redis
    from ingest import ensure_database, setup_fixtures

    ensure_database(args.database_url)
    django.setup()
    from django.urls import reverse

    from accounts.models import Membership, User
    from usage.ingestion.services import call_records_ingest
    from usage.models import Model

    tenant, keys, _models, _secret = setup_fixtures()
    model = Model.objects.get_or_create(name="bench/cache")[0]
    user = User.objects.filter(email="cache-bench@example.com").first()
    if user is None:
        user = User.objects.create_user("cache-bench@example.com", "bench-password-123")
        Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.OWNER)
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    for start in range(0, args.history, 1000):
        call_records_ingest(items=items(keys, model, f"history-{start}", 1000, yesterday))
    cache = redis.Redis(port=port)
    cache.flushdb()
    stop, fed, reads = threading.Event(), [0], [0]
    url = reverse("usage:data", args=[tenant.slug])
    threads = [threading.Thread(target=feed, args=(keys, model, args.rate, stop, fed))]
    threads += [threading.Thread(target=read, args=(user, url, stop, reads)) for _ in range(args.readers)]
    for thread in threads:
        thread.start()
    time.sleep(args.seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    names = cache.keys("*")
    sizes = [cache.memory_usage(name) or 0 for name in names]
    ttls = [cache.ttl(name) for name in names]
    print(f"{args.seconds:.0f} s, {args.readers} readers, {fed[0]:,} calls fed ({fed[0] / args.seconds:,.0f}/s)")
    print(f"reads: {reads[0]:,}; cache: {len(names):,} keys, {sum(sizes) / 1e6:.2f} MB")
    if sizes:
        print(f"largest entry {max(sizes) / 1e3:.1f} KB; TTLs {min(ttls)}-{max(ttls)} s")


if __name__ == "__main__":
    main()
