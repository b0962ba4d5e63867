"""Helpers of the tests that start real processes (Celery workers, gunicorn) on the test database."""

import os
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections

from usageproject.celery import app

from ..conftest import required

ROOT = Path(settings.BASE_DIR)


@pytest.fixture
def broker_url():
    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url:
        if required("REQUIRE_SERVICES"):
            pytest.fail("REQUIRE_SERVICES is set but CELERY_BROKER_URL is not")
        pytest.skip("No CELERY_BROKER_URL: the real-worker test needs a broker")
    if connection.vendor != "postgresql":
        pytest.skip("The worker test needs PostgreSQL (advisory locks hold the worker mid-rollup)")
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=2)  # unreachable broker: the test fails here
    return url


def database_url():
    db = connection.settings_dict
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"Timed out after {timeout}s waiting for {what}")


def blocked_on_advisory_lock():
    """A session of this database (not another suite's) waits for an advisory lock."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory' AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0
