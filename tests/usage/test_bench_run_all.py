"""bench/run_all.py's measurement of one size, at 2,000 calls, so the script cannot rot.

Everything but bench/live.py's part runs as in the real benchmark, on the test database: the
catalog, the import (``manage.py import_calls`` in a subprocess), a bare COPY rolled back, a
sample through the ingestion API on gunicorn, the bare GROUP BY, the rebuild and a day's
recompute by a real Celery worker with its peak RSS, the dashboard timings, sizes and purge.
"""

import os
import tempfile

import pytest

from usage.models import CallPurge, CallRecord, DirtyDay, UsageDailyModel
from usageproject.celery import app

from .conftest import database_url

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_run_all_measures_one_size_end_to_end(broker_url, monkeypatch):
    from types import SimpleNamespace

    from bench import run_all

    # The bench modules set defaults in os.environ on import; they must not outlive the test.
    for name in ("DEBUG", "ALLOWED_HOSTS"):
        monkeypatch.setenv(name, os.environ.get(name, "absent"))
        if os.environ[name] == "absent":
            monkeypatch.delenv(name)  # undone in reverse: absent again after the test
    monkeypatch.setenv("CELERY_BROKER_URL", broker_url)
    monkeypatch.setenv("DATABASE_URL", database_url())  # the API sample's gunicorn reads os.environ
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": broker_url, "LOG_LEVEL": "ERROR"}
    args = SimpleNamespace(
        days=3,
        api_sample=200,
        next_id=0,
        web_workers=1,
        repeat=2,
        ledger_repeat=1,
        smallest=False,
        live=False,
        existing=False,
    )
    app.control.purge()

    run_all.build_catalog()
    with tempfile.TemporaryDirectory() as workdir:
        figures = {}
        run_all.measure_size(2000, args, env, workdir, figures)

    assert figures["ledger calls"] == CallRecord.objects.count() == 2000
    assert CallRecord.objects.filter(request_id__startswith="copy-ref-").count() == 0  # rolled back
    assert not DirtyDay.objects.exists() and UsageDailyModel.objects.exists()
    for name in ("import_calls, calls/s", "bare COPY into the ledger, rows/s", "ingestion API, calls/s"):
        assert figures[name] > 0, name
    assert 0 < figures["worker peak RSS (rebuild + recompute), MB"] < 1000
    assert figures["ledger on disk, MB"] > 0 and figures["rollups on disk, MB"] > 0
    assert "bench-00 90 days: page, p50 / p95 ms" in figures
    assert "bench-00 90 days: ledger aggregation, p50 / p95 ms" in figures
    purged, left, drop, claims = figures[
        "purge of one month: calls purged, left in that month, drop s, claims cleanup s"
    ]
    assert purged > 0 and left == 0 and drop >= 0 and claims >= 0
    assert not CallPurge.objects.exists()  # reset, so that a larger size can import that month again
