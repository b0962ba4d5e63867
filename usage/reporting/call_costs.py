"""Reading the pricing classes a call-priced line is costed from (``usage.pricing_rules``).

Clean days come from ``UsagePricingClass``; a day marked dirty (a zone change or repair awaiting
its recompute) from the ledger, classified the same way, as every other read of such a day.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from usage import localtime
from usage.models import CallRecord, DirtyDay, UsagePricingClass
from usage.pricing_rules import SERVICE_TIER_POSITION, PricingClass, classes_from_values

if TYPE_CHECKING:
    from accounts.models import Tenant

LineKey = tuple[dt.date, int, int]  # local day, key, model
ClassIndex = dict[LineKey, list[PricingClass]]


def _from_ledger(
    tenant: Tenant,
    days: Iterable[dt.date],
    model_ids: Collection[int],
    api_key_id: int | None,
    until: dt.datetime | None,
) -> Iterable[PricingClass]:
    for day in days:
        start, end = localtime.day_span(tenant, day, day)
        end = min(end, until) if until is not None else end
        calls = CallRecord.objects.filter(
            tenant=tenant, occurred_at__gte=start, occurred_at__lt=end, model_id__in=list(model_ids)
        )
        if api_key_id is not None:
            calls = calls.filter(api_key_id=api_key_id)
        rows = calls.values_list(
            "tenant_id", "api_key_id", "model_id", "occurred_at", "input_tokens", "output_tokens",
            "cached_input_tokens", "service_tier",
        )  # fmt: skip
        values = [(*row[:7], *[None] * (SERVICE_TIER_POSITION - 7), row[7]) for row in rows.iterator()]
        for (_t, cls_day, key_id, model_id, tier, band, half_hour), sums in classes_from_values(
            values, {tenant.pk: tenant.timezone}
        ).items():
            yield PricingClass(cls_day, key_id, model_id, tier, band, half_hour, *sums)


def class_index(
    *,
    tenant: Tenant,
    first: dt.date,
    last: dt.date,
    model_ids: Collection[int],
    api_key_id: int | None = None,
    until: dt.datetime | None = None,
) -> ClassIndex:
    """{(day, key, model): [PricingClass]} of the models' calls on days first..last (those
    before ``until`` only, when given: read from the ledger)."""
    index: ClassIndex = defaultdict(list)
    if not model_ids:
        return index
    dirty = set(DirtyDay.objects.filter(tenant=tenant, day__range=(first, last)).values_list("day", flat=True))
    if until is not None:
        dirty |= {first + dt.timedelta(days=n) for n in range((last - first).days + 1)}
    rows = UsagePricingClass.objects.filter(tenant=tenant, day__range=(first, last), model_id__in=list(model_ids))
    if api_key_id is not None:
        rows = rows.filter(api_key_id=api_key_id)
    fields = list(PricingClass._fields)
    fields[1:3] = ["api_key_id", "model_id"]
    for row in rows.exclude(day__in=dirty).values_list(*fields):
        cls = PricingClass(*row)
        index[(cls.day, cls.api_key_id, cls.model_id)].append(cls)
    for cls in _from_ledger(tenant, sorted(dirty), model_ids, api_key_id, until):
        index[(cls.day, cls.api_key_id, cls.model_id)].append(cls)
    return index
