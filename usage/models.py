from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiKey, Tenant

# A bucket never holds more than this many tokens of one kind; JSON integers above it are
# not exact in most clients, so ingestion refuses them.
MAX_TOKENS = 2**53 - 1


class Model(models.Model):
    """A catalog entry such as ``public/deepseek-r1``: platform-wide, or private to one tenant."""

    name = models.CharField(max_length=255, unique=True)
    tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="private_models",
        help_text="Empty for a platform-wide model.",
    )
    listed = models.BooleanField(
        default=True, help_text="Unlisted models were first seen in reported calls and await review."
    )
    color = models.CharField(
        max_length=7, blank=True, help_text="Chart colour, #rrggbb; derived from the name if empty."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class CallRecord(models.Model):
    """One reported model call: the append-only ledger every number is derived from."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    api_key = models.ForeignKey(ApiKey, on_delete=models.PROTECT, related_name="+")
    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="+")
    occurred_at = models.DateTimeField()
    input_tokens = models.BigIntegerField()
    output_tokens = models.BigIntegerField()
    # Null means "not reported", which is not the same as 0.
    cached_input_tokens = models.BigIntegerField(null=True, blank=True)
    reasoning_tokens = models.BigIntegerField(null=True, blank=True)
    request_id = models.CharField(max_length=255)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # Deduplication of re-sent calls: one row per request id within a tenant.
            models.UniqueConstraint(fields=["tenant", "request_id"], name="callrecord_unique_request"),
            models.CheckConstraint(
                condition=Q(input_tokens__gte=0)
                & Q(output_tokens__gte=0)
                & (Q(cached_input_tokens__isnull=True) | Q(cached_input_tokens__gte=0))
                & (Q(reasoning_tokens__isnull=True) | Q(reasoning_tokens__gte=0)),
                name="callrecord_tokens_not_negative",
            ),
        ]
        indexes = [
            # Rollup recompute and dirty-day reads: WHERE tenant = %s AND occurred_at in [a, b);
            # also the ledger API, newest first.
            models.Index(fields=["tenant", "occurred_at"], name="callrecord_tenant_time"),
            # The admin's request-id prefix search (LIKE 'abc%'): pattern ops serve it in any collation.
            models.Index(fields=["request_id"], name="callrecord_request_prefix", opclasses=["varchar_pattern_ops"]),
        ]

    def __str__(self):
        return self.request_id

    @property
    def total_tokens(self):
        return self.input_tokens + self.output_tokens


class Sums(models.Model):
    """Sums of one bucket. Nullable sums stay null when no call in the bucket reported them."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="+")
    calls = models.BigIntegerField()
    input_tokens = models.BigIntegerField()
    output_tokens = models.BigIntegerField()
    cached_input_tokens = models.BigIntegerField(null=True)
    reasoning_tokens = models.BigIntegerField(null=True)

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.tenant_id}/{self.model_id}: {self.calls} calls"


class RollupFields(Sums):
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.tenant_id}/{self.api_key_id}/{self.model_id}: {self.calls} calls"


class UsageHourly(RollupFields):
    """One local hour of a tenant (``hour`` is the instant the local hour starts)."""

    hour = models.DateTimeField()

    class Meta:
        verbose_name_plural = "usage hourly"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "hour", "api_key", "model"], name="usagehourly_unique_bucket")
        ]
        # The unique index (tenant, hour, ...) serves every read: WHERE tenant = %s AND hour in [a, b).


class UsageDaily(RollupFields):
    """One local day of a tenant, in the tenant's time zone."""

    day = models.DateField()

    class Meta:
        verbose_name_plural = "usage daily"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day", "api_key", "model"], name="usagedaily_unique_bucket")
        ]
        # The unique index (tenant, day, ...) serves every read: WHERE tenant = %s AND day in [a, b].


class UsageDailyModel(Sums):
    """One local day per model over all keys: what the "All keys" views read (keys x fewer rows)."""

    day = models.DateField()

    class Meta:
        verbose_name_plural = "usage daily per model"
        constraints = [models.UniqueConstraint(fields=["tenant", "day", "model"], name="usagedailymodel_unique_bucket")]
        # The unique index (tenant, day, model) serves every read: WHERE tenant = %s AND day in [a, b].


class DirtyDay(models.Model):
    """A tenant's local day whose rollups may be stale.

    Ingestion upserts the row with a fresh ``token``; the rollup deletes it only if the token
    is still the one it read before recomputing, so a call that lands mid-recompute keeps
    the day dirty. A crashed task leaves the row in place for the next run or the sweep.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    token = models.CharField(max_length=32)
    marked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "day"], name="dirtyday_unique")]
        # The unique index (tenant, day) serves the selectors' "which days in range are dirty".
        indexes = [
            # The beat sweep: oldest dirty rows first.
            models.Index(fields=["marked_at"], name="dirtyday_marked_at"),
        ]

    def __str__(self):
        return f"{self.tenant_id} {self.day}"


class ModelPrice(models.Model):
    """Price of a model from a local date on; a tenant's own price overrides the platform's."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="prices")
    tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="model_prices",
        help_text="Empty for the platform price; set for a tenant's contract price.",
    )
    currency = models.CharField(max_length=3, default="USD", help_text="ISO 4217 code, e.g. USD.")
    input_per_1k = models.DecimalField(max_digits=18, decimal_places=8)
    output_per_1k = models.DecimalField(max_digits=18, decimal_places=8)
    cached_input_per_1k = models.DecimalField(
        max_digits=18,
        decimal_places=8,
        null=True,
        blank=True,
        help_text="Empty: cached input tokens cost the input price.",
    )
    effective_from = models.DateField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model__name", "tenant_id", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "effective_from"],
                condition=Q(tenant__isnull=True),
                name="modelprice_unique_platform",
            ),
            models.UniqueConstraint(
                fields=["model", "tenant", "effective_from"],
                condition=Q(tenant__isnull=False),
                name="modelprice_unique_tenant",
            ),
            models.CheckConstraint(
                condition=Q(input_per_1k__gte=0) & Q(output_per_1k__gte=0),
                name="modelprice_not_negative",
            ),
        ]
        # Price lookups read all prices of a few models at once; the unique indexes lead with model.

    def __str__(self):
        scope = self.tenant.slug if self.tenant_id else "platform"
        return f"{self.model} {scope} from {self.effective_from}"
