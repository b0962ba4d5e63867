"""Issue 28 item 2 end to end: a real Prometheus scrapes gunicorn (2 workers, multiprocess mode)
during ingestion, and PromQL's count of accepted calls equals the ledger's.

Prometheus (Debian package ``prometheus``) runs as a subprocess with a temporary configuration
and storage, scraping every second with the service token as its bearer credential.
"""

import datetime as dt
import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.utils import timezone

from accounts import services as account_services
from usage.models import CallRecord

from . import servers
from .test_metrics import dashboard_queries

QUERY = 'sum(usage_ingest_calls_total{outcome="accepted"})'
BATCHES, NEW_PER_BATCH = 24, 4


@pytest.fixture
def product(transactional_db, tmp_path):
    """gunicorn with two workers sharing a multiprocess directory, on the test database."""
    multiproc = tmp_path / "prometheus-multiproc"
    env = {
        "DATABASE_URL": servers.test_database_url(),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "INGEST_WINDOW_PAST_DAYS": "36500",
    }
    # No broker: rollups and budgets run in-process; this test is about counting.
    process, port = servers.gunicorn({**env, "CELERY_BROKER_URL": ""}, workers=2)
    yield port, multiproc
    servers.stop(process)


@pytest.fixture
def prometheus(tmp_path):
    """Start Prometheus for a target and a bearer credential; (query function) is returned."""
    binary = servers.program("prometheus")
    started = []

    def start(target_port, credential):
        port = servers.free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
            "scrape_configs:\n"
            "  - job_name: usage\n"
            "    authorization:\n"
            f"      credentials: {credential}\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{target_port}']\n"
        )
        command = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append(process)
        servers.wait_for_port(port, process, "prometheus")
        return port

    yield start
    for process in started:
        servers.stop(process)


def _query(port, promql):
    """The instant vector of a PromQL query through the HTTP API: [(labels, value)]."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return [(item["metric"], float(item["value"][1])) for item in answer["data"]["result"]]


def _target_up(port):
    try:
        return [value for _labels, value in _query(port, 'up{job="usage"}')] == [1.0]
    except urllib.error.HTTPError as error:
        if error.code == 503:  # Prometheus answers 503 until its storage is ready: not up yet
            return False
        raise


def _post_batch(port, secret, key, batch):
    """Four new calls, the first of them again (a duplicate) and an item with no fields (rejected)."""
    sent_at = (timezone.now() - dt.timedelta(hours=1)).isoformat()
    calls = [
        {
            "request_id": f"prom-{batch}-{i}",
            "api_key": key.public_id,
            "model": "public/deepseek-r1",
            "occurred_at": sent_at,
            "input_tokens": 10 + i,
            "output_tokens": 1,
        }
        for i in range(NEW_PER_BATCH)
    ]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/ingest/calls",
        data=json.dumps({"calls": [*calls, calls[0], {"request_id": f"bad-{batch}"}]}).encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json", "Connection": "close"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_prometheus_counts_exactly_the_accepted_calls_of_the_ledger(product, prometheus, tenant, llm):
    port, multiproc = product
    key, _ = account_services.api_key_create(tenant=tenant, name="gateway")
    _token, secret = account_services.service_token_create(name="prometheus")
    prom_port = prometheus(port, secret)
    _wait(lambda: _target_up(prom_port), "Prometheus to scrape the product")

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda n: _post_batch(port, secret, key, n), range(BATCHES)))

    ledger = CallRecord.objects.count()
    assert ledger == sum(answer["accepted"] for answer in answers) == BATCHES * NEW_PER_BATCH
    pids = {path.stem.rsplit("_", 1)[-1] for path in multiproc.glob("counter_*.db")}
    assert len(pids) == 2, f"both workers must have counted, for the sum to span processes: {pids}"

    def prometheus_count():
        result = _query(prom_port, QUERY)
        return result[0][1] if result else None

    _wait(lambda: prometheus_count() == ledger, f"PromQL {QUERY} to reach {ledger}", last=prometheus_count)
    time.sleep(2.5)  # two more scrapes: the count stays at the ledger's, it does not overshoot
    assert prometheus_count() == ledger
    rejected = _query(prom_port, 'sum(usage_ingest_calls_total{outcome="rejected"})')[0][1]
    duplicates = _query(prom_port, 'sum(usage_ingest_calls_total{outcome="duplicate"})')[0][1]
    assert (rejected, duplicates) == (BATCHES, BATCHES)
    tenant_series = _query(prom_port, 'count({job="usage", tenant!=""})')
    assert tenant_series == []
    for query in dashboard_queries():  # Grafana's variables as it would fill them in
        promql = query.replace("$job", "usage").replace("$__rate_interval", "1m").replace("$__range", "1h")
        _query(prom_port, promql)  # asserts Prometheus accepted the query


def _wait(condition, what, seconds=30, last=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}" + (f" (last: {last()})" if last else ""))
