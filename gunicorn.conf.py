"""gunicorn settings read from the working directory (``gunicorn usageproject.wsgi`` in README).

Django answers an over-long URL itself (414, problem+json under /api/, ``MAX_URL_LENGTH``), so
gunicorn's own limit on the request line is set above it: its plain-text 414 only comes for lines
beyond 8190 bytes, the most gunicorn allows.
"""

limit_request_line = 8190


# --- Prometheus multiprocess mode (README "Health and metrics") ------------------------------
# With PROMETHEUS_MULTIPROC_DIR set, each worker writes its counters to files there and /metrics
# adds up the files of all of them. The directory is emptied when gunicorn starts (the values of
# a previous run would be added to this one's), and a worker that exits is marked dead so its
# live gauges drop out while its counters still count.


def on_starting(server: object) -> None:
    import os
    from pathlib import Path

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()


def child_exit(server: object, worker: object) -> None:
    import os

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
