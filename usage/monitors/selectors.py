"""Reads of a tenant's monitors for the page and the API."""

from django.db.models import QuerySet

from accounts.models import Tenant
from usage.models import Monitor, MonitorEvent

RECENT_EVENTS = 5


def tenant_monitors(*, tenant: Tenant) -> QuerySet[Monitor]:
    return Monitor.objects.filter(tenant=tenant).select_related("model", "api_key", "channels").order_by("name", "pk")


def monitor_events(*, monitor: Monitor, limit: int | None = RECENT_EVENTS) -> QuerySet[MonitorEvent]:
    """Newest first; ``limit`` None for all."""
    events = monitor.events.order_by("-created_at", "-pk")
    return events[:limit] if limit else events
