"""Live reads benchmark: reads while calls arrive, at 10k and at 1M calls already today.

One command, PostgreSQL, Redis (broker and cache), run for this checkout and, side by side in
the same run, for another checkout (``--baseline DIR``, e.g. a ``git worktree`` of the previous
commit), each in a database of its own:

    .venv/bin/python bench/live.py --baseline /tmp/live-base

Per checkout: migrate; ``bench/dashboard.py generate --calls 2000000`` and ``prices`` (90 days of
history, 20 tenants; bench-00 is the largest); then calls today for bench-00 through the
product's own import (``manage.py import_calls``), first up to 10,000, later up to 1,000,000.
At each of the two levels, with gunicorn (3 workers), a real Celery worker and a client posting
``--rate`` calls/s to ``/api/v1/ingest/calls`` for bench-00 the whole time:

- page, data, trend, distribution and API summary, p50/p95 over ``--repeat`` requests, for
  90 days and Last 2 weeks (Django's test client in a process of the checkout, Redis cache);
- freshness: a prober reads today's calls from the API summary every 100 ms; for each batch,
  how long after its ingestion answer reads still missed it (0 when the first read after the
  answer already has it);
- empty cache: page, 90 days, the cache cleared before each request;
- 8 concurrent connections for ``--concurrency-seconds`` each on the page JSON and API summary,
  through gunicorn: requests/s and p50;
- the worker's CPU seconds (worker and pool processes) per 100,000 ingested calls.
Then, without the load, the ingestion API's calls/s (4 clients, batches of 500, 10 s) and the
import's calls/s (from the 990,000-call import). Everything on loopback; all loops bounded.
"""

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432/"
BROKER_DB, CACHE_DB = 7, 8  # --redis-dbs
SECRET = "bench-live-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def env_for(root, db):
    return {
        **os.environ,
        "DATABASE_URL": PG + db,
        "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{BROKER_DB}",
        "CACHE_URL": f"redis://127.0.0.1:6379/{CACHE_DB}",
        "SECRET_KEY": SECRET,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "API_THROTTLE_RATE": "10000000/min",
        "PYTHONPATH": str(root),
        "LOG_LEVEL": "ERROR",
    }


def run(root, db, *args, quiet=True):
    done = subprocess.run(
        [sys.executable, *args], cwd=root, env=env_for(root, db), capture_output=quiet, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"{args} failed in {root}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def psql(sql):
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True, capture_output=True)


# --- In a process of the checkout: fixtures and in-process reads ---------------------------------


def child_main(command, args):
    sys.path.insert(0, os.getcwd())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usageproject.settings")
    import django

    django.setup()
    if command == "_fixtures":
        print(json.dumps(_fixtures()))
    elif command == "_today_file":
        _today_file(*args)
    elif command == "_reads":
        print(json.dumps(_reads(int(args[0]))))


def _fixtures():
    """Credentials for bench-00: a session cookie, an access token, a service token, its keys."""
    from django.test import Client

    from accounts import services
    from accounts.models import ApiKey, Tenant, User

    tenant = Tenant.objects.get(slug="bench-00")
    client = Client()
    client.force_login(User.objects.get(email="bench@example.test"))
    _token, access = services.access_token_create(tenant=tenant, name=f"live-{time.time()}")
    _service, service = services.service_token_create(name=f"live-{time.time()}")
    keys = [key.public_id for key in ApiKey.objects.filter(tenant=tenant, revoked_at__isnull=True)]
    return {
        "session": client.cookies["sessionid"].value,
        "access": access,
        "service": service,
        "keys": keys,
        "zone": tenant.timezone,
    }


def _today_file(path, first, count):
    """JSONL of ``count`` calls for bench-00 today (local), request ids from ``first`` on."""
    import random

    from django.utils import timezone

    from accounts.models import ApiKey, Tenant

    first, count = int(first), int(count)
    tenant = Tenant.objects.get(slug="bench-00")
    keys = [key.public_id for key in ApiKey.objects.filter(tenant=tenant, revoked_at__isnull=True)]
    now = timezone.now()
    midnight = dt.datetime.combine(now.astimezone(tenant.tz).date(), dt.time.min, tzinfo=tenant.tz)
    span = (now - midnight).total_seconds() - 120
    rng = random.Random(first)
    models = ["public/deepseek-r1", "public/deepseek-v3", "public/qwen3-235b", "public/llama-3.3-70b"]
    with open(path, "w") as out:
        for n in range(first, first + count):
            at = midnight + dt.timedelta(seconds=rng.random() * span)
            out.write(
                json.dumps(
                    {
                        "request_id": f"today-{n}",
                        "api_key": keys[n % len(keys)],
                        "model": models[n % len(models)],
                        "occurred_at": at.isoformat(),
                        "input_tokens": 100 + n % 900,
                        "output_tokens": 10 + n % 300,
                    }
                )
                + "\n"
            )


def _timed(function, repeat):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = function()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return times


def _p(times):
    ordered = sorted(times)
    return round(statistics.median(ordered), 1), round(
        ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1
    )


def _reads(repeat):
    from django.core.cache import cache
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from accounts.models import Tenant, User

    tenant = Tenant.objects.get(slug="bench-00")
    fixtures = json.loads(os.environ["LIVE_FIXTURES"])
    page = Client()
    page.force_login(User.objects.get(email="bench@example.test"))
    api = Client(HTTP_AUTHORIZATION=f"Bearer {fixtures['access']}")
    today = timezone.now().astimezone(tenant.tz).date()
    ranges = {
        "90 days": {"start": (today - dt.timedelta(days=89)).isoformat(), "end": today.isoformat()},
        "Last 2 weeks": {"preset": "last_2_weeks"},
    }
    endpoints = {
        "page": (page, reverse("usage:dashboard", kwargs={"slug": tenant.slug})),
        "data": (page, reverse("usage:data", kwargs={"slug": tenant.slug})),
        "trend": (page, reverse("usage:chart_trend", kwargs={"slug": tenant.slug})),
        "distribution": (page, reverse("usage:chart_distribution", kwargs={"slug": tenant.slug})),
        "API summary": (api, reverse("api_usage_summary")),
    }
    result = {}
    for range_name, params in ranges.items():
        for name, (client, url) in endpoints.items():
            _timed(lambda c=client, u=url, p=params: c.get(u, p), 3)
            result[f"{range_name} · {name}"] = _p(_timed(lambda c=client, u=url, p=params: c.get(u, p), repeat))

    def cold(url=endpoints["page"][1], params=ranges["90 days"]):
        cache.clear()
        return page.get(url, params)

    result["90 days · page, empty cache"] = _p(_timed(cold, max(10, repeat // 3)))
    return result


# --- Orchestrator ---------------------------------------------------------------------------------


class Server:
    def __init__(self, root, db, port):
        self.port = port
        env = env_for(root, db)
        self.web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "3", "--bind", f"127.0.0.1:{port}", "usageproject.wsgi"],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "usageproject", "worker", "--concurrency=1", "--loglevel=error",
             "--without-heartbeat", "--without-gossip", "--without-mingle"],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(2)

    def worker_cpu(self):
        """CPU seconds of the worker's process group (main and pool processes)."""
        tick, total = os.sysconf("SC_CLK_TCK"), 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.worker.pid:  # pgrp
                total += int(fields[11]) + int(fields[12])
        return total / tick

    def stop(self):
        for process in (self.web, self.worker):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait()


def _request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
    return data


class Load:
    """A client posting ``rate`` calls/s in batches of 100 (10 a second) for bench-00, now."""

    def __init__(self, port, fixtures, rate, prefix):
        self.port, self.fixtures, self.rate, self.prefix = port, fixtures, rate, prefix
        self.stop_flag = threading.Event()
        self.answers = []  # (answered at, calls accepted so far)
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Bearer {self.fixtures['service']}", "Content-Type": "application/json"}
        batch, interval, n = 100, 100 / self.rate, 0
        keys = self.fixtures["keys"]
        next_at = time.monotonic()
        while not self.stop_flag.is_set() and n < 10_000_000:
            now = dt.datetime.now(dt.UTC)
            calls = [
                {
                    "request_id": f"{self.prefix}-{n + i}",
                    "api_key": keys[(n + i) % len(keys)],
                    "model": "public/deepseek-r1",
                    "occurred_at": now.isoformat(),
                    "input_tokens": 100,
                    "output_tokens": 10,
                }
                for i in range(batch)
            ]
            n += batch
            body = json.loads(_request(conn, "POST", "/api/v1/ingest/calls", json.dumps({"calls": calls}), headers))
            self.accepted += body["accepted"]
            self.answers.append((time.monotonic(), self.accepted))
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))


class Prober:
    """Reads bench-00's calls today from the API summary every 100 ms: (started, calls seen)."""

    def __init__(self, port, fixtures):
        self.port, self.fixtures = port, fixtures
        self.reads = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Bearer {self.fixtures['access']}"}
        while not self.stop_flag.is_set() and len(self.reads) < 100_000:
            started = time.monotonic()
            body = json.loads(_request(conn, "GET", "/api/v1/usage/summary?preset=today", headers=headers))
            self.reads.append((started, body["calls"]))
            time.sleep(0.1)


def staleness(answers, reads, base):
    """For each answered batch: how long after its answer a read (started later) still missed it."""
    lags = []
    for answered_at, accepted in answers:
        later = [(started, seen) for started, seen in reads if started >= answered_at]
        if not later:
            continue
        missed = [started - answered_at for started, seen in later if seen < base + accepted]
        lags.append(max(missed) if missed else 0.0)
    return lags


def concurrent(port, path, headers, seconds, clients=8):
    """Requests/s and p50 ms of ``clients`` connections looping on ``path`` for ``seconds``."""
    times, deadline = [], time.monotonic() + seconds
    lock = threading.Lock()

    def loop():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            _request(conn, "GET", path, headers=headers)
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return round(len(times) / seconds, 1), round(statistics.median(times), 1)


def api_burst(port, fixtures, prefix, seconds=10, clients=4, batch=500):
    headers = {"Authorization": f"Bearer {fixtures['service']}", "Content-Type": "application/json"}
    deadline, counts = time.monotonic() + seconds, []

    def loop(c):
        conn, n, accepted = http.client.HTTPConnection("127.0.0.1", port, timeout=60), 0, 0
        while time.monotonic() < deadline:
            now = dt.datetime.now(dt.UTC).isoformat()
            calls = [
                {"request_id": f"{prefix}-{c}-{n + i}", "api_key": fixtures["keys"][i % len(fixtures["keys"])],
                 "model": "public/qwen3-32b", "occurred_at": now, "input_tokens": 7, "output_tokens": 3}
                for i in range(batch)
            ]  # fmt: skip
            n += batch
            accepted += json.loads(
                _request(conn, "POST", "/api/v1/ingest/calls", json.dumps({"calls": calls}), headers)
            )["accepted"]
        counts.append(accepted)

    started = time.monotonic()
    threads = [threading.Thread(target=loop, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return round(sum(counts) / (time.monotonic() - started))


def import_today(root, db, first, count, workdir):
    path = Path(workdir) / f"{db}-today-{first}-{count}.jsonl"  # the keys' public ids are the database's
    if not path.exists():
        run(root, db, str(HERE / "bench" / "live.py"), "_today_file", str(path), str(first), str(count))
    started = time.monotonic()
    run(root, db, "manage.py", "import_calls", str(path), "--no-progress", "--rejects", str(path) + ".rejects")
    return round(count / (time.monotonic() - started))


def measure_level(root, db, fixtures, args, label, port):
    server = Server(root, db, port)
    figures = {}
    try:
        base = None
        load = Load(port, fixtures, args.rate, prefix=f"load-{label}-{time.time_ns()}")
        prober = Prober(port, fixtures)
        cpu_before = server.worker_cpu()
        load.thread.start()
        time.sleep(3)
        base_conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {fixtures['access']}"}
        base = json.loads(_request(base_conn, "GET", "/api/v1/usage/summary?preset=today", headers=headers))["calls"]
        base -= load.accepted  # what was there before the load (the prober compares against this)
        figures["calls today at start"] = base
        figures["load average at start (1, 5, 15 min)"] = [round(load, 2) for load in os.getloadavg()]
        prober.thread.start()
        env = {**env_for(root, db), "LIVE_FIXTURES": json.dumps(fixtures)}
        reads = subprocess.run(
            [sys.executable, str(HERE / "bench" / "live.py"), "_reads", str(args.repeat)],
            cwd=root, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if reads.returncode != 0:
            sys.exit(f"reads failed in {root}:\n{reads.stderr}")
        figures["reads"] = json.loads(reads.stdout.strip().splitlines()[-1])
        today = dt.datetime.now().astimezone().date()
        query = urlencode({"start": (today - dt.timedelta(days=89)).isoformat(), "end": today.isoformat()})
        cookie = {"Cookie": f"sessionid={fixtures['session']}"}
        figures["8 connections: data (page JSON), 90 days: req/s, p50 ms"] = concurrent(
            port, f"/t/bench-00/usage/data/?{query}", cookie, args.concurrency_seconds
        )
        figures["8 connections: API summary, 90 days: req/s, p50 ms"] = concurrent(
            port, f"/api/v1/usage/summary?{query}", headers, args.concurrency_seconds
        )
        load.stop_flag.set()
        prober.stop_flag.set()
        load.thread.join()
        prober.thread.join()
        time.sleep(3)  # the worker finishes what the load queued
        cpu = server.worker_cpu() - cpu_before
        lags = sorted(staleness(load.answers, prober.reads, base))
        figures["ingested under load"] = load.accepted
        figures["worker CPU s per 100k calls"] = round(cpu / max(load.accepted, 1) * 100_000, 2)
        figures["freshness s (p50, p95, max)"] = (
            round(statistics.median(lags), 3),
            round(lags[round(0.95 * (len(lags) - 1))], 3),
            round(lags[-1], 3),
        )
        figures["batches / reads probed"] = (len(lags), len(prober.reads))
        if args.burst:
            figures["ingestion API calls/s, 4 clients x 500"] = api_burst(
                port, fixtures, f"burst-{label}-{time.time_ns()}"
            )
    finally:
        server.stop()
    return figures


def bench_checkout(root, tag, args, workdir):
    db = f"usage_bench_live_{tag}"
    print(f"\n== {tag}: {root} ({db})", flush=True)
    results = {}
    if args.reuse or args.grow:
        run(root, db, "manage.py", "migrate", "--no-input")  # the checkout may have moved on since
    else:
        psql(f"DROP DATABASE IF EXISTS {db}")
        psql(f"CREATE DATABASE {db}")
        run(root, db, "manage.py", "migrate", "--no-input")
        started = time.monotonic()
        run(root, db, "bench/dashboard.py", "generate", "--calls", str(args.history))
        run(root, db, "bench/dashboard.py", "prices")
        print(f"history: {args.history:,} calls in {time.monotonic() - started:.0f} s", flush=True)
        import_today(root, db, 0, 10_000, workdir)
    fixtures = json.loads(run(root, db, str(HERE / "bench" / "live.py"), "_fixtures").strip().splitlines()[-1])
    port = 18700 + (0 if tag == "new" else 1)
    if args.build_only:
        return results
    if args.grow:  # the database of an earlier --build-only run: import up to --today calls today
        results["import calls/s"] = import_today(root, db, 10_000, args.today - 10_000, workdir)
        print(f"import of {args.today - 10_000:,} calls today: {results['import calls/s']:,} calls/s", flush=True)
        return results
    if args.reuse:  # the database of an earlier run, as it is: one level, named --label
        results[args.label] = measure_level(root, db, fixtures, args, args.label, port)
        print(f"{args.label} today (reused): {json.dumps(results[args.label])}", flush=True)
        return results
    results["10k"] = measure_level(root, db, fixtures, args, "10k", port)
    print(f"10k today: {json.dumps(results['10k'])}", flush=True)
    results["import calls/s"] = import_today(root, db, 10_000, args.today - 10_000, workdir)
    print(f"import of {args.today - 10_000:,} calls today: {results['import calls/s']:,} calls/s", flush=True)
    results["1M"] = measure_level(root, db, fixtures, args, "1M", port)
    print(f"1M today: {json.dumps(results['1M'])}", flush=True)
    return results


def report(results, args):
    """Markdown tables: every read and figure per checkout and level, and the 1M / 10k ratio of p95."""
    levels = dict.fromkeys(("10k", "1M", args.label))  # --reuse --label names a level of its own
    columns = [(tag, level) for tag in results for level in levels if level in results[tag]]
    first = results[columns[0][0]][columns[0][1]]
    print("\n## Live reads under load: p50 / p95 ms\n")
    print("| read | " + " | ".join(f"{tag} {level}" for tag, level in columns) + " | p95 ratio 1M / 10k |")
    print("|---|" + "---:|" * (len(columns) + 1))
    for name in first["reads"]:
        cells = [" / ".join(map(str, results[tag][level]["reads"][name])) for tag, level in columns]
        ratios = [
            f"{tag} {results[tag]['1M']['reads'][name][1] / results[tag]['10k']['reads'][name][1]:.2f}"
            for tag in results
            if {"10k", "1M"} <= results[tag].keys()
        ]
        print(f"| {name} | " + " | ".join(cells) + f" | {', '.join(ratios)} |")
    print("\n## Other figures\n")
    print("| figure | " + " | ".join(f"{tag} {level}" for tag, level in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name in first:
        if name != "reads":
            print(f"| {name} | " + " | ".join(str(results[tag][level][name]) for tag, level in columns) + " |")
    imports = [f"{tag} {results[tag]['import calls/s']:,}" for tag in results if "import calls/s" in results[tag]]
    print(f"\nimport_calls of 990,000 calls today, calls/s: {', '.join(imports) or 'not run'}")
    print(f"load: {args.rate} calls/s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def main():
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        return child_main(sys.argv[1], sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="another checkout (e.g. the previous commit) to measure side by side")
    parser.add_argument("--history", type=int, default=2_000_000)
    parser.add_argument("--today", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--concurrency-seconds", type=int, default=30)
    parser.add_argument(
        "--reuse", action="store_true", help="measure the databases of an earlier run as they are (1M level only)"
    )
    parser.add_argument("--only", choices=["new", "baseline"], help="measure one checkout only")
    parser.add_argument("--label", default="1M", help="with --reuse: the level's name in the figures")
    parser.add_argument(
        "--build-only", action="store_true", help="build the database (history and 10k calls today), measure nothing"
    )
    parser.add_argument("--grow", action="store_true", help="import up to --today calls today into a built database")
    parser.add_argument("--no-burst", dest="burst", action="store_false", help="skip the ingestion API burst")
    parser.add_argument("--redis-dbs", default="7,8", help="Redis databases of the broker and the cache (flushed)")
    args = parser.parse_args()
    global BROKER_DB, CACHE_DB  # noqa: PLW0603 (read by env_for, in this process only)
    BROKER_DB, CACHE_DB = (int(number) for number in args.redis_dbs.split(","))
    subprocess.run(["redis-cli", "-n", str(BROKER_DB), "flushdb"], check=True, capture_output=True)
    roots = {"new": HERE}
    if args.baseline:
        roots["baseline"] = Path(args.baseline).resolve()
    if args.only:
        roots = {args.only: roots[args.only]}
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-live-") as workdir:
        for tag, root in roots.items():
            results[tag] = bench_checkout(root, tag, args, workdir)
    Path(HERE / "artifacts").mkdir(exist_ok=True)
    name = f"live-{args.label}-{args.only}.json" if args.reuse and args.only else "live.json"
    (HERE / "artifacts" / name).write_text(json.dumps(results, indent=1))
    if not (args.build_only or args.grow):
        report(results, args)
    return None


if __name__ == "__main__":
    main()
