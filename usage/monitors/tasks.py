"""Celery task of monitors: thin, the service does the work (registered by ``usage.apps``)."""

from celery import shared_task


@shared_task
def evaluate_monitors():
    """Beat, every MONITOR_EVALUATE_SECONDS: every monitor; a rerun is harmless (state under row lock)."""
    from usage.monitors.services import monitors_evaluate_all

    return monitors_evaluate_all()
