from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiKey, Tenant
from usage import pricing_rules

# The most tokens of one kind a single call may report. Chosen so that no sum the product keeps
# can overflow or lose exactness: a bucket (bigint, max 9.2e18) would need 9.2e9 calls at the
# maximum, and a JSON sum stays below 2**53 (exact in every client) up to 9 million such calls.
# The longest context windows offered today are a few million tokens.
MAX_TOKENS = 10**9


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

    def clean(self):
        # Names resolve before aliases: a model named like an alias would silently take its calls.
        if ModelAlias.objects.filter(name=self.name).exclude(model_id=self.pk).exists():
            raise ValidationError({"name": "An alias of another model has this name."})


class ModelAlias(models.Model):
    """Another name under which gateways report a catalog model: ``deepseek-r1`` or
    ``together_ai/deepseek-ai/DeepSeek-R1`` for ``public/deepseek-r1``.

    Ingestion (``usage.ingestion.services``) resolves a reported name to a model by its name
    first, then by its aliases, and adds an unlisted model only for a name that is neither. An
    alias is global like a model's name: it may not be the name of another model.
    """

    name = models.CharField(max_length=255, unique=True)
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="aliases")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "model aliases"

    def __str__(self):
        return f"{self.name} -> {self.model}"

    def clean(self):
        self.name = self.name.strip()
        clash = Model.objects.filter(name=self.name)
        if self.model_id is not None:
            clash = clash.exclude(pk=self.model_id)
        if clash.exists():
            raise ValidationError({"name": "A model has this name; an alias must name no other model."})


class CallStatus(models.TextChoices):
    OK = "ok", "OK"
    ERROR = "error", "Error"


class ErrorType(models.TextChoices):
    """Why a call failed; the order is the rollups' status bucket order (``usage.rollups.performance``)."""

    RATE_LIMITED = "rate_limited", "Rate limited"
    TIMEOUT = "timeout", "Timeout"
    SERVER_ERROR = "server_error", "Server error"
    CLIENT_ERROR = "client_error", "Client error"
    CANCELLED = "cancelled", "Cancelled"
    CONTENT_FILTER = "content_filter", "Content filter"
    OTHER = "other", "Other"


class ServiceTier(models.TextChoices):
    STANDARD = "standard"
    BATCH = "batch"
    FLEX = "flex"
    PRIORITY = "priority"


class CallRecord(models.Model):
    """One reported model call: the append-only ledger every number is derived from.

    On PostgreSQL the table is range-partitioned by month of ``occurred_at`` (``usage.ledger.partitions``;
    migration 0006). A partitioned table's keys must contain the partition key, so its real primary
    key is (id, occurred_at); Django keeps ``id`` as the primary key, which stays unique (one
    sequence), so the admin and ORM reads by pk work unchanged. (tenant, request_id) is unique
    across partitions through ``CallRequest``, which every writer claims first.
    """

    # No index of its own: callrecord_tenant_time leads with the tenant.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    api_key = models.ForeignKey(ApiKey, on_delete=models.PROTECT, related_name="+")
    model = models.ForeignKey(Model, on_delete=models.PROTECT, related_name="+")
    occurred_at = models.DateTimeField()
    input_tokens = models.BigIntegerField()
    output_tokens = models.BigIntegerField()
    # Null means "not reported", which is not the same as 0.
    cached_input_tokens = models.BigIntegerField(null=True, blank=True)
    reasoning_tokens = models.BigIntegerField(null=True, blank=True)
    # Cache writes (inside input_tokens, apart from the cached reads) and the part of them
    # written for one hour (inside cache_creation_input_tokens); null: not reported.
    cache_creation_input_tokens = models.BigIntegerField(null=True, blank=True)
    cache_creation_1h_input_tokens = models.BigIntegerField(null=True, blank=True)
    # Performance (``usage.ingestion.validation``): null means "not reported", which is not 0.
    duration_ms = models.IntegerField(null=True, blank=True, help_text="Request to last byte, in milliseconds.")
    time_to_first_token_ms = models.IntegerField(null=True, blank=True)
    status = models.CharField(max_length=5, null=True, blank=True, choices=CallStatus.choices)
    error_type = models.CharField(max_length=16, null=True, blank=True, choices=ErrorType.choices)
    http_status = models.SmallIntegerField(null=True, blank=True)
    # The provider's service tier the call ran at (``usage.pricing_rules``): null means
    # "not reported", priced as ``standard``.
    service_tier = models.CharField(max_length=8, null=True, blank=True, choices=ServiceTier.choices)
    request_id = models.CharField(max_length=255)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # A partition may only enforce keys that contain occurred_at: this one refuses the same
            # call twice at the same instant; CallRequest makes the request id unique across months.
            # It also serves the duplicate/conflict read, pruned to the one partition of the instant.
            models.UniqueConstraint(
                fields=["tenant", "request_id", "occurred_at"], name="callrecord_unique_request_instant"
            ),
            models.CheckConstraint(
                condition=Q(input_tokens__gte=0)
                & Q(output_tokens__gte=0)
                & (Q(cached_input_tokens__isnull=True) | Q(cached_input_tokens__gte=0))
                & (Q(reasoning_tokens__isnull=True) | Q(reasoning_tokens__gte=0)),
                name="callrecord_tokens_not_negative",
            ),
            models.CheckConstraint(
                condition=(Q(cache_creation_input_tokens__isnull=True) | Q(cache_creation_input_tokens__gte=0))
                & (Q(cache_creation_1h_input_tokens__isnull=True) | Q(cache_creation_1h_input_tokens__gte=0)),
                name="callrecord_cache_writes_not_negative",
            ),
            models.CheckConstraint(
                condition=(Q(duration_ms__isnull=True) | Q(duration_ms__gte=0))
                & (Q(time_to_first_token_ms__isnull=True) | Q(time_to_first_token_ms__gte=0))
                & (Q(error_type__isnull=True) | Q(status="error")),
                name="callrecord_performance_valid",
            ),
        ]
        indexes = [
            # Rollup recompute and dirty-day reads: WHERE tenant = %s AND occurred_at in [a, b);
            # also the ledger API, newest first.
            models.Index(fields=["tenant", "occurred_at"], name="callrecord_tenant_time"),
            # The admin's request-id prefix search (LIKE 'abc%'): pattern ops serve it in any collation.
            models.Index(fields=["request_id"], name="callrecord_request_prefix", opclasses=["varchar_pattern_ops"]),
            # The calls explorer's failed calls, newest first: WHERE tenant = %s AND status = 'error'
            # AND occurred_at in [a, b) ORDER BY occurred_at DESC. Partial: successful calls, the
            # bulk of the inserts, do not maintain it.
            models.Index(
                fields=["tenant", "occurred_at"], condition=Q(status="error"), name="callrecord_tenant_errors"
            ),
        ]

    def __str__(self):
        return self.request_id

    @property
    def total_tokens(self):
        return self.input_tokens + self.output_tokens


class CallRequest(models.Model):
    """The claim of a request id by a stored call: what deduplicates the ledger across partitions.

    Written in the transaction that stores the call, before it, with ``ON CONFLICT DO NOTHING
    RETURNING``: only the calls whose claim is new reach the ledger. ``occurred_at`` locates the
    stored call (its partition) for the duplicate-or-conflict comparison, and lets retention
    delete the claims of purged months.
    """

    pk = models.CompositePrimaryKey("tenant_id", "request_id")
    # No database constraint: the ledger row's own key references the tenant; a claim is never
    # written without it. No index of its own: the primary key leads with the tenant.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", db_index=False
    )
    request_id = models.CharField(max_length=255)
    occurred_at = models.DateTimeField()

    class Meta:
        indexes = [
            # Retention: DELETE .. WHERE occurred_at < horizon, in batches.
            models.Index(fields=["occurred_at"], name="callrequest_time"),
        ]

    def __str__(self):
        return f"{self.tenant_id}/{self.request_id}"


class CallPurge(models.Model):
    """One retention run: ledger rows before ``purged_before`` (a UTC month start) are gone.

    The newest ``purged_before`` is the horizon: call-level detail exists from it on, rollups keep
    the totals of every day, and nothing may store or recompute from the ledger before it.
    """

    purged_before = models.DateTimeField()
    purged_at = models.DateTimeField(default=timezone.now)
    calls = models.BigIntegerField(help_text="Calls deleted (PostgreSQL: the dropped partitions' row estimate).")
    partitions = models.JSONField(default=list, blank=True, help_text="PostgreSQL: the partitions dropped.")

    class Meta:
        ordering = ["-purged_before"]
        # The horizon read (newest purged_before) scans a handful of rows: one per purge.

    def __str__(self):
        return f"before {self.purged_before:%Y-%m-%d}"


class Sums(models.Model):
    """Sums of one bucket. Nullable sums stay null when no call in the bucket reported them."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="+")
    calls = models.BigIntegerField()
    input_tokens = models.BigIntegerField()
    output_tokens = models.BigIntegerField()
    cached_input_tokens = models.BigIntegerField(null=True)
    reasoning_tokens = models.BigIntegerField(null=True)
    cache_creation_input_tokens = models.BigIntegerField(null=True)
    cache_creation_1h_input_tokens = models.BigIntegerField(null=True)

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


class PerformanceHourly(models.Model):
    """One local hour of a tenant's calls of one key and model: how many fell in one bucket of one
    metric (``usage.rollups.performance``): the status and error type, or a histogram bucket of
    latency, time to first token or output tokens per second. Sparse: only buckets with calls
    have a row, so any range of hours, keys and models merges by summing ``calls``.
    """

    # No index of its own: the unique index leads with the tenant.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    hour = models.DateTimeField()
    # Indexed (as the usage rollups' keys and models): deleting a key or a model cascades here.
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="+")
    metric = models.SmallIntegerField()
    bucket = models.SmallIntegerField()
    calls = models.BigIntegerField()

    class Meta:
        verbose_name_plural = "performance hourly"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "hour", "api_key", "model", "metric", "bucket"], name="performancehourly_unique"
            )
        ]
        # The unique index (tenant, hour, ...) serves every read: WHERE tenant = %s AND hour in [a, b).

    def __str__(self):
        return f"{self.tenant_id}/{self.hour}/{self.api_key_id}/{self.model_id} {self.metric}:{self.bucket}"


class UsageDaily(RollupFields):
    """One local day of a tenant, in the tenant's time zone."""

    day = models.DateField()

    class Meta:
        verbose_name_plural = "usage daily"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day", "api_key", "model"], name="usagedaily_unique_bucket")
        ]
        # The unique index (tenant, day, ...) serves every read: WHERE tenant = %s AND day in [a, b].


class UsagePricingClass(models.Model):
    """Calls of one local day x key x model that a call-dependent price tells apart: their service
    tier, context band (``usage.pricing_rules.CONTEXT_EDGES``) and UTC half-hour. Sparse:
    only classes with calls have a row. Read only to cost models whose price has rules or a fee.
    """

    # No index of its own: the unique index leads with the tenant.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="+")
    service_tier = models.CharField(max_length=8, help_text="Empty: not reported (priced as standard).")
    band = models.SmallIntegerField(help_text="How many context edges the calls' input tokens are above.")
    half_hour = models.DateTimeField(help_text="The UTC half-hour the calls started in.")
    calls = models.BigIntegerField()
    input_tokens = models.BigIntegerField()
    output_tokens = models.BigIntegerField()
    cached_input_tokens = models.BigIntegerField(help_text="Not reported counts 0 here.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "api_key", "model", "service_tier", "band", "half_hour"],
                name="usagepricingclass_unique",
            )
        ]
        # The unique index (tenant, day, ...) serves every read: WHERE tenant = %s AND day in [a, b].

    def __str__(self):
        return f"{self.tenant_id}/{self.day}/{self.api_key_id}/{self.model_id} {self.service_tier}:{self.band}"


class UsageDailyModel(Sums):
    """One local day per model over all keys: what the "All keys" views read (keys x fewer rows)."""

    day = models.DateField()
    # Bumped by every increment of the row: with the newest id and the row count it versions
    # a range of days for the caches (a recompute inserts new rows, so new ids).
    revision = models.BigIntegerField(default=1, db_default=1)
    # The row's cost (``usage.reporting.day_costs``), stored by the first read of a closed day: valid while
    # ``cost_revision`` equals ``revision`` and ``cost_terms`` the terms of the price in force.
    cost_revision = models.BigIntegerField(null=True, blank=True)
    cost_terms = models.TextField(null=True, blank=True)
    cost_currency = models.CharField(max_length=3, null=True, blank=True)
    # Exact: all the decimals a line cost can have (the rates' 8, plus 3 for "per 1K").
    cost_amount = models.DecimalField(max_digits=40, decimal_places=11, null=True, blank=True)
    cost_unpriced = models.BigIntegerField(null=True, blank=True)

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
    cache_write_per_1k = models.DecimalField(
        max_digits=18,
        decimal_places=8,
        null=True,
        blank=True,
        help_text="Cache writes (5-minute). Empty: cache writes cost the input price.",
    )
    cache_write_1h_per_1k = models.DecimalField(
        max_digits=18,
        decimal_places=8,
        null=True,
        blank=True,
        help_text="Cache writes kept for one hour. Empty: the cache write price.",
    )
    reasoning_per_1k = models.DecimalField(
        max_digits=18,
        decimal_places=8,
        null=True,
        blank=True,
        help_text="Reasoning tokens (inside the output). Empty: reasoning costs the output price.",
    )
    request_fee = models.DecimalField(
        max_digits=18, decimal_places=8, null=True, blank=True, help_text="Fee per request (call), if any."
    )
    pricing_rules = models.TextField(
        blank=True,
        default="",
        help_text="Context tiers, service tiers and time windows as JSON (README, Costs); empty: none.",
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
        scope = self.tenant.slug if self.tenant is not None else "platform"
        return f"{self.model} {scope} from {self.effective_from}"

    def clean(self):
        """Rules are stored canonical and checked against the base rates (``pricing_rules.check_rules``)."""
        super().clean()
        if self.input_per_1k is None or self.output_per_1k is None:
            return
        try:
            self.pricing_rules = pricing_rules.canonical_rules(self.pricing_rules or "")
            pricing_rules.check_rules(text=self.pricing_rules, base=pricing_rules.base_rates(self))
        except ValidationError as error:
            raise ValidationError({"pricing_rules": error.messages}) from None
        except ValueError as error:
            raise ValidationError({"pricing_rules": f"not JSON ({error})"}) from None
        class_rates = [name for name in ("cache_write_per_1k", "cache_write_1h_per_1k", "reasoning_per_1k")
                       if getattr(self, name) is not None]  # fmt: skip
        if class_rates and (self.pricing_rules or self.request_fee is not None):
            # A call-priced line is costed from the pricing classes, which count no cache writes
            # nor reasoning apart: refused rather than costed wrong.
            raise ValidationError(
                dict.fromkeys(class_rates, "Not supported together with pricing rules or a request fee yet.")
            )


class PriceChange(models.Model):
    """One change of a ModelPrice (added, changed, deleted): who, when, the old and new terms.

    Written by ``usage.pricebook.services`` for the admin and ``import_prices`` alike, in the
    transaction that changes the price. Kept when the price or its author is deleted: the model,
    tenant and terms are copied, not only referenced.
    """

    class Action(models.TextChoices):
        ADDED = "added", "Added"
        CHANGED = "changed", "Changed"
        DELETED = "deleted", "Deleted"

    price = models.ForeignKey(ModelPrice, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="price_changes")
    tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="price_changes",
        help_text="Empty: platform.",
    )
    action = models.CharField(max_length=8, choices=Action.choices)
    # {"currency", "input_per_1k", "output_per_1k", "cached_input_per_1k", "cache_write_per_1k",
    # "cache_write_1h_per_1k", "reasoning_per_1k", "effective_from"} (the last three since issue 26) as
    # strings (exact decimals); null before an addition and after a deletion.
    old_terms = models.JSONField(null=True, blank=True)
    new_terms = models.JSONField(null=True, blank=True)
    changed_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="price_changes"
    )
    actor = models.CharField(max_length=150, help_text="The user's name or the command that made the change.")
    source = models.CharField(max_length=20, help_text="admin, import_prices, ...")
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-changed_at", "-pk"]
        indexes = [
            # The Prices page: a tenant's and the platform's changes of some models, newest first.
            models.Index(fields=["model", "-changed_at"], name="pricechange_model_time"),
        ]

    def __str__(self):
        return f"{self.action} {self.model_id} by {self.actor} at {self.changed_at:%Y-%m-%d %H:%M}"


# --- Budgets (usage.budgets) -------------------------------------------------------------------

# Each threshold of a budget may fire one alert per channel and period: more would let one form
# post fan out into hundreds of messages.
MAX_BUDGET_THRESHOLDS = 10


def validate_budget_thresholds(value):
    """A list of at most MAX_BUDGET_THRESHOLDS whole percentages from 1 to 1000."""
    from django.core.exceptions import ValidationError

    if not isinstance(value, list) or not all(type(t) is int and 1 <= t <= 1000 for t in value):
        raise ValidationError("Thresholds are whole percentages between 1 and 1000.")
    if len(set(value)) > MAX_BUDGET_THRESHOLDS:
        raise ValidationError(f"At most {MAX_BUDGET_THRESHOLDS} thresholds per budget.")


class Budget(models.Model):
    """A limit on a tenant's (or one of its keys') cost or tokens per local calendar period."""

    class Metric(models.TextChoices):
        COST = "cost", "Cost"
        TOKENS = "tokens", "Tokens"

    class PeriodKind(models.TextChoices):
        MONTH = "month", "Calendar month"
        WEEK = "week", "Week"
        DAY = "day", "Day"

    class State(models.TextChoices):
        WITHIN = "within", "Within"
        WARNING = "warning", "Warning"
        EXCEEDED = "exceeded", "Exceeded"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="budgets")
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="budgets", help_text="Empty: all keys."
    )
    name = models.CharField(max_length=100)
    metric = models.CharField(max_length=8, choices=Metric.choices, default=Metric.COST)
    amount = models.DecimalField(max_digits=24, decimal_places=6, help_text="Currency amount, or a number of tokens.")
    currency = models.CharField(max_length=3, blank=True, help_text="ISO 4217 code; empty for a token budget.")
    period = models.CharField(max_length=8, choices=PeriodKind.choices, default=PeriodKind.MONTH)
    week_start = models.PositiveSmallIntegerField(default=0, help_text="0 = Monday ... 6 = Sunday.")
    thresholds = models.JSONField(
        default=list, validators=[validate_budget_thresholds], help_text="Percentages, e.g. [50, 80, 100]."
    )
    enforce = models.BooleanField(default=False, help_text="Report the state to the gateway in keys/verify.")
    emails = models.CharField(max_length=1000, blank=True, help_text="Comma-separated addresses.")
    webhook_url = models.CharField(max_length=1000, blank=True, help_text="http(s) URL; checked by the form.")
    webhook_salt = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The last evaluation, read by keys/verify without recomputing (see BUDGET_STATE_MAX_AGE_SECONDS).
    state = models.CharField(max_length=8, choices=State.choices, blank=True)
    state_spent = models.DecimalField(max_digits=30, decimal_places=6, null=True, blank=True)
    state_period_start = models.DateField(null=True, blank=True)
    state_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["tenant_id", "name", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="budget_amount_positive"),
            models.CheckConstraint(condition=Q(week_start__lte=6), name="budget_week_start_weekday"),
        ]
        # Budgets are read by tenant (the page, the ingestion hook): the FK index serves them.

    def __str__(self):
        return f"{self.tenant_id}/{self.name}"


class BudgetAlert(models.Model):
    """A threshold (or the forecast) crossed in one period: the unique constraint makes it fire once."""

    class Kind(models.TextChoices):
        THRESHOLD = "threshold", "Threshold"
        FORECAST = "forecast", "Forecast to exceed"

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    threshold = models.PositiveIntegerField(help_text="Percent; 100 for the forecast alert.")
    spent = models.DecimalField(max_digits=30, decimal_places=6)
    limit = models.DecimalField(max_digits=24, decimal_places=6)
    projected = models.DecimalField(max_digits=30, decimal_places=6)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start", "kind", "threshold"], name="budgetalert_once_per_period"
            )
        ]
        indexes = [
            # The admin's alert history, newest first.
            models.Index(fields=["-created_at"], name="budgetalert_created"),
        ]

    def __str__(self):
        return f"{self.budget_id} {self.period_start} {self.kind} {self.threshold}%"


class UnpricedModelAlert(models.Model):
    """The first use of a model with no price in force by a tenant: one row per tenant and model,
    so its owners are told once (``usage.budgets.unpriced``)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="unpriced_alerts")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="unpriced_alerts")
    first_day = models.DateField(help_text="The tenant's first local day seen with unpriced calls of the model.")
    calls = models.BigIntegerField(help_text="Unpriced calls seen when the alert fired.")
    tokens = models.BigIntegerField(help_text="Unpriced tokens seen when the alert fired.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["tenant", "model"], name="unpricedalert_once")]

    def __str__(self):
        return f"{self.tenant_id} {self.model_id} unpriced from {self.first_day}"


class AlertDelivery(models.Model):
    """One message of an alert to one channel; ``delivery_id`` stays the same across retries."""

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    # The budget whose channels (e-mails, webhook) the message goes to.
    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="deliveries")
    alert = models.ForeignKey(
        BudgetAlert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries", help_text="Empty: test"
    )
    unpriced = models.ForeignKey(
        UnpricedModelAlert,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="deliveries",
        help_text="Set for the alert of a model used without a price (then ``alert`` is empty).",
    )
    # A monitor's firing or resolve (``usage.monitors``), sent through the budget's channels.
    monitor_event = models.ForeignKey(
        "MonitorEvent", null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    delivery_id = models.UUIDField(unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Every attempt: [{"at": iso, "ok": bool, "status_code": int|None, "error": str}].
    log = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Retries wait until then (back-off, or the tenant's rate limit); empty: due now.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Handed to a worker (queued or running) until then; after it, the sweep hands it out again.
    lease_until = models.DateTimeField(null=True, blank=True)
    # The current hand-out: a task message carrying another one is stale and does nothing.
    dispatch_id = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "alert deliveries"
        indexes = [
            # The dispatcher's due deliveries: WHERE status = 'pending' AND next_attempt_at <= now ...
            models.Index(fields=["status", "next_attempt_at"], name="alertdelivery_due"),
        ]

    def __str__(self):
        return f"{self.channel} {self.delivery_id} {self.status}"


class DeliveryQuota(models.Model):
    """A tenant's alert deliveries handed out in the current minute; its row is the dispatcher's lock."""

    tenant = models.OneToOneField(Tenant, primary_key=True, on_delete=models.CASCADE, related_name="+")
    window_start = models.DateTimeField(default=timezone.now)
    started = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"{self.tenant_id}: {self.started} since {self.window_start}"


# --- Monitors (usage.monitors) -----------------------------------------------------------------


MONITOR_MIN_WINDOW = 5  # minutes: beat evaluates every minute (MONITOR_EVALUATE_SECONDS)
MONITOR_MAX_LEDGER_WINDOW = 24 * 60  # a window of minutes is read from the ledger: at most a day of calls
MONITOR_MAX_WINDOW = 168 * 60  # whole hours, from the rollups: a week


def check_monitor_window(minutes: int) -> None:
    """A monitor's window: 5 to 1440 minutes, or whole hours up to a week."""
    if not MONITOR_MIN_WINDOW <= minutes <= MONITOR_MAX_WINDOW:
        raise ValidationError(
            f"The window is {MONITOR_MIN_WINDOW} to {MONITOR_MAX_LEDGER_WINDOW} minutes, or whole hours up to "
            f"{MONITOR_MAX_WINDOW // 60} hours ({MONITOR_MAX_WINDOW} minutes)."
        )
    if minutes > MONITOR_MAX_LEDGER_WINDOW and minutes % 60:
        raise ValidationError(
            f"A window longer than a day is whole hours (a multiple of 60 minutes); {minutes} is not."
        )


class Monitor(models.Model):
    """An alert rule on a tenant's calls: error rate, p95 latency or a usage spike of a model or key
    over a window of ``window_minutes``, once at least ``min_calls`` calls are in it.

    A window of whole hours is the last N local hours, the current one included, read from the
    hourly rollups; any other window (at most a day) is the last M minutes up to the evaluation,
    read from the ledger, exactly (``usage.monitors.services``).

    Fires once per episode (``state`` goes to firing) and sends a resolve when it is back; both go
    through the channels of ``channels`` (a budget's e-mails and webhook).
    """

    class Metric(models.TextChoices):
        ERROR_RATE = "error_rate", "Error rate (%)"
        LATENCY_P95 = "latency_p95", "p95 latency (ms)"
        USAGE_SPIKE = "usage_spike", "Calls vs the same hours a week before (times)"

    class State(models.TextChoices):
        OK = "ok", "OK"
        FIRING = "firing", "Firing"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="monitors")
    name = models.CharField(max_length=100)
    metric = models.CharField(max_length=12, choices=Metric.choices)
    threshold = models.DecimalField(
        max_digits=14, decimal_places=4, help_text="Fires above it: percent, milliseconds or times."
    )
    model = models.ForeignKey(Model, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    window_minutes = models.PositiveSmallIntegerField(
        default=60,
        help_text="Minutes: a multiple of 60 is the last N local hours, the current one included (up to 168"
        " hours); any other, 5 to 1440, is the last M minutes.",
    )
    min_calls = models.PositiveIntegerField(default=50)
    channels = models.ForeignKey(
        Budget, on_delete=models.CASCADE, related_name="monitors", help_text="The budget whose channels it uses."
    )
    state = models.CharField(max_length=6, choices=State.choices, default=State.OK)
    value = models.FloatField(null=True, blank=True, help_text="The last evaluation's value.")
    evaluated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["tenant_id", "name", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(threshold__gt=0), name="monitor_threshold_positive"),
            # Only whole hours may exceed a day: ``clean`` (the forms, the API) says so.
            models.CheckConstraint(
                condition=Q(window_minutes__gte=MONITOR_MIN_WINDOW, window_minutes__lte=MONITOR_MAX_WINDOW),
                name="monitor_window_minutes",
            ),
        ]
        # Read by tenant (the evaluation): the foreign key's index serves it.

    def __str__(self):
        return f"{self.tenant_id}/{self.name}"

    @property
    def whole_hours(self) -> int | None:
        """N when the window is the last N local hours (read from the rollups), else None."""
        return self.window_minutes // 60 if self.window_minutes % 60 == 0 else None

    def clean(self):
        if self.window_minutes is not None:
            try:
                check_monitor_window(self.window_minutes)
            except ValidationError as invalid:
                raise ValidationError({"window_minutes": invalid.messages}) from None
        if self.channels_id and self.tenant_id and self.channels.tenant_id != self.tenant_id:
            raise ValidationError({"channels": "Choose a budget of the same tenant."})
        if self.api_key is not None and self.tenant_id and self.api_key.tenant_id != self.tenant_id:
            raise ValidationError({"api_key": "Choose a key of the same tenant."})


class MonitorEvent(models.Model):
    """A monitor fired or resolved; each has its deliveries."""

    class Kind(models.TextChoices):
        FIRED = "fired", "Fired"
        RESOLVED = "resolved", "Resolved"

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    value = models.FloatField(null=True)
    calls = models.BigIntegerField()
    window_start = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.monitor_id} {self.kind} {self.created_at:%Y-%m-%d %H:%M}"
