"""OTLP ingestion benchmark on PostgreSQL: GenAI spans through ``/api/v1/otlp/v1/traces`` on gunicorn.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/usage_bench_ingest \\
        .venv/bin/python bench/otlp.py --calls 200000

Reuses ``bench/ingest.py``'s database, fixtures, gunicorn and client threads. The same N
generated calls (as in that benchmark) go into an empty ledger three ways, and the calls/s of
each are printed:

- ``api``: the JSON ingestion API, batches of ``--batch`` calls (the reference);
- ``otlp``: OTLP/HTTP protobuf exports of ``--batch`` GenAI spans each (what the SDK's exporter
  and the Collector's ``otlphttp`` exporter send);
- ``otlp-json``: the same exports in OTLP/JSON.

Every phase is checked: the ledger holds exactly N calls afterwards, and every export was
answered 200 with nothing rejected.
"""

import argparse
import http.client
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest as base  # noqa: E402  (bench/ingest.py: sets up Django's environment)


def spans_request(items):
    """An ExportTraceServiceRequest of GenAI spans for the calls ``items``."""
    import datetime as dt

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    message = ExportTraceServiceRequest()
    scope = message.resource_spans.add().scope_spans.add()
    scope.scope.name = "bench-gateway"
    for n, item in enumerate(items):
        span = scope.spans.add()
        span.trace_id = n.to_bytes(8, "big") + int(item["request_id"].split("-")[1]).to_bytes(8, "big")
        span.span_id = (n + 1).to_bytes(8, "big")
        span.name = "chat"
        end = dt.datetime.fromisoformat(item["occurred_at"].replace("Z", "+00:00"))
        span.end_time_unix_nano = int(end.timestamp() * 1_000_000) * 1000
        span.start_time_unix_nano = span.end_time_unix_nano - 500_000_000
        attributes = {
            "gen_ai.operation.name": AnyValue(string_value="chat"),
            "gen_ai.response.id": AnyValue(string_value=item["request_id"]),
            "gen_ai.request.model": AnyValue(string_value=item["model"]),
            "usage_statistics.api_key": AnyValue(string_value=item["api_key"]),
            "gen_ai.usage.input_tokens": AnyValue(int_value=item["input_tokens"]),
            "gen_ai.usage.output_tokens": AnyValue(int_value=item["output_tokens"]),
        }
        if "cached_input_tokens" in item:
            attributes["gen_ai.usage.cache_read.input_tokens"] = AnyValue(int_value=item["cached_input_tokens"])
        if "reasoning_tokens" in item:
            attributes["gen_ai.usage.reasoning.output_tokens"] = AnyValue(int_value=item["reasoning_tokens"])
        span.attributes.extend(KeyValue(key=key, value=value) for key, value in attributes.items())
    return message


def otlp_json(message):
    from google.protobuf import json_format

    payload = json_format.MessageToDict(message)
    for span in payload["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for name in ("traceId", "spanId"):
            span[name] = __import__("base64").b64decode(span[name]).hex()
    return json.dumps(payload).encode()


def post(port, secret, bodies, clients, path, content_type):
    """Like bench/ingest.py's post_batches, for any endpoint; returns failed and rejected counts."""
    lock = threading.Lock()
    position = iter(range(len(bodies)))
    totals = {"failed": 0, "rejected": 0, "accepted": 0}
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": content_type}

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                break
            conn.request("POST", path, body=bodies[index], headers=headers)
            response = conn.getresponse()
            response.read()
            with lock:
                if response.status != 200:
                    totals["failed"] += 1
                totals["rejected"] += int(response.getheader("X-Usage-Rejected") or 0)
                totals["accepted"] += int(response.getheader("X-Usage-Accepted") or 0)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return totals


PHASES = {
    "api": ("/api/v1/ingest/calls", "application/json"),
    "otlp": ("/api/v1/otlp/v1/traces", "application/x-protobuf"),
    "otlp-json": ("/api/v1/otlp/v1/traces", "application/json"),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--phases", default="api,otlp,otlp-json")
    args = parser.parse_args()
    args.worker_class, args.threads = "sync", 1
    url = os.environ.setdefault("DATABASE_URL", base.DEFAULT_URL)
    if not url.startswith("postgres"):
        sys.exit("The OTLP benchmark runs on PostgreSQL: set DATABASE_URL.")
    base.ensure_database(url)
    base.django.setup()
    tenant, keys, models, secret = base.setup_fixtures()
    print(f"load average before: {os.getloadavg()}", flush=True)
    rows, items = base.generate(args.calls, tenant, keys, models)
    chunks = [items[i : i + args.batch] for i in range(0, len(items), args.batch)]
    bodies = {
        "api": [json.dumps({"calls": chunk}).encode() for chunk in chunks],
        "otlp": [spans_request(chunk).SerializeToString() for chunk in chunks],
    }
    bodies["otlp-json"] = [otlp_json(spans_request(chunk)) for chunk in chunks]
    sizes = {name: sum(map(len, value)) / len(value) / 1024 for name, value in bodies.items()}
    results = {}
    with base.psycopg.connect(url, autocommit=True) as conn:
        for name in args.phases.split(","):
            path, content_type = PHASES[name]
            base.reset(conn)
            server, port = base.start_gunicorn(args)
            try:
                warm = b'{"calls": []}' if name == "api" else b"" if name == "otlp" else b"{}"
                post(port, secret, [warm] * args.workers * 4, args.clients, path, content_type)
                started = time.perf_counter()
                totals = post(port, secret, bodies[name], args.clients, path, content_type)
                elapsed = time.perf_counter() - started
            finally:
                base.stop_gunicorn(server)
            assert totals["failed"] == 0 and totals["rejected"] == 0, totals
            assert base.count(conn) == len(rows), f"{name}: {base.count(conn)} rows instead of {len(rows)}"
            results[name] = len(rows) / elapsed
            print(f"{name:10} {elapsed:8.2f} s  {results[name]:>10,.0f} calls/s  ({sizes[name]:.0f} KiB a request)")
        base.reset(conn)
    print(f"load average after: {os.getloadavg()}", flush=True)
    base.purge_broker()
    print(
        f"\n{args.calls:,} calls; {args.clients} clients x {args.batch}-call requests; gunicorn {args.workers} sync workers"
    )
    if "api" in results:
        for name in ("otlp", "otlp-json"):
            if name in results:
                print(f"{name} / JSON API: {results[name] / results['api']:.2f}")


if __name__ == "__main__":
    main()
