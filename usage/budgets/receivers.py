"""Budgets subscribe to ingestion's announcement (connected in ``UsageConfig.ready``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.dispatch import receiver

from usage.budgets.services import budgets_after_ingest
from usage.ingestion.signals import calls_stored


@receiver(calls_stored)
def evaluate_after_ingest(sender: object, tenant_ids: Iterable[int], **kwargs: Any) -> None:
    budgets_after_ingest(tenant_ids)
