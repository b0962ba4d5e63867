from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from accounts.admin import TenantAdmin
from accounts.models import Tenant
from usage.models import (
    AlertDelivery,
    Budget,
    BudgetAlert,
    CallRecord,
    DirtyDay,
    Model,
    ModelAlias,
    ModelPrice,
    Monitor,
    MonitorEvent,
    PriceChange,
    UnpricedModelAlert,
    UsageDaily,
    UsageDailyModel,
    UsageHourly,
)
from usage.outages import task_publish
from usage.pricebook.preview import Preview, price_preview
from usage.pricebook.services import TERM_FIELDS, Actor, price_delete, price_save
from usage.tasks import rebuild_tenant

admin.site.unregister(Tenant)


@admin.register(Tenant)
class TenantWithRollupsAdmin(TenantAdmin):
    """The tenant's admin (``accounts.admin``) and its usage action, defined here so that
    ``accounts/`` imports nothing of ``usage/``."""

    actions = ["rebuild_rollups"]

    @admin.action(description="Rebuild usage rollups from the ledger")
    def rebuild_rollups(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        tenant_ids = list(queryset.values_list("pk", flat=True))
        started = sum(task_publish(rebuild_tenant, (tenant_id,)) for tenant_id in tenant_ids)
        if started < len(tenant_ids):  # the broker is unreachable: say so, never a 500
            message = f"The task queue is unreachable: {len(tenant_ids) - started} rebuild(s) not started."
            self.message_user(request, message + " Try again later or run manage.py rebuild_rollups.", messages.ERROR)
        if started:
            self.message_user(request, f"Rebuild of {started} tenant(s) started.", messages.SUCCESS)


class CappedCountPaginator(Paginator):
    """Counts at most ``CAP`` rows: a bounded subquery instead of COUNT(*) over millions.

    Past the cap the changelist offers CAP / per_page pages; narrow with filters or search.
    """

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP].count()  # type: ignore[attr-defined]  # a QuerySet in the admin

    @property
    def is_capped(self):
        """The count stopped at the cap: the real number is at least this (shown "10,000+")."""
        return self.count >= self.CAP

    @property
    def capped_display(self):
        return f"{self.CAP:,}+"


class BigTableAdmin(admin.ModelAdmin):
    """Changelists over millions of rows: no full count, no joins for filters, read-only."""

    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 100

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ModelAliasInline(admin.TabularInline):
    model = ModelAlias
    extra = 1
    fields = ["name", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "listed", "color", "created_at"]
    list_select_related = ["tenant"]
    list_filter = ["listed", ("tenant", admin.EmptyFieldListFilter)]
    search_fields = ["name", "aliases__name"]
    raw_id_fields = ["tenant"]
    list_editable = ["listed"]
    inlines = [ModelAliasInline]


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    """Aliases map the names gateways report (``deepseek-r1``) onto a catalog model; see ``usage.models.ModelAlias``."""

    list_display = ["name", "model", "created_at"]
    list_select_related = ["model"]
    search_fields = ["name", "model__name"]
    raw_id_fields = ["model"]


class ModelPriceForm(forms.ModelForm):
    """The price form; its "Preview" button validates, computes the preview and saves nothing."""

    PREVIEW = "_preview"

    class Meta:
        model = ModelPrice
        fields = [
            "model",
            "tenant",
            "currency",
            "input_per_1k",
            "output_per_1k",
            "cached_input_per_1k",
            "cache_write_per_1k",
            "cache_write_1h_per_1k",
            "reasoning_per_1k",
            "effective_from",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.preview: Preview | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        if self.PREVIEW in self.data and not self.errors:
            original = ModelPrice.objects.filter(pk=self.instance.pk).first() if self.instance.pk else None
            self.preview = price_preview(original=original, new=self.instance_with(cleaned))
            # An error is what keeps the admin from saving: the form comes back with the preview.
            raise forms.ValidationError("Preview only: nothing was saved. Check the costs below, then save.")
        return cleaned

    def instance_with(self, cleaned: dict[str, Any]) -> ModelPrice:
        terms = {name: cleaned.get(name) for name in ("model", "tenant", *TERM_FIELDS)}
        return ModelPrice(pk=self.instance.pk, **terms)


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Prices are saved and deleted through ``usage.pricebook.services``: every change is audited."""

    form = ModelPriceForm
    change_form_template = "admin/usage/modelprice/change_form.html"
    delete_confirmation_template = "admin/usage/modelprice/delete_confirmation.html"
    list_display = [
        "model",
        "tenant",
        "currency",
        "input_per_1k",
        "output_per_1k",
        "cached_input_per_1k",
        "effective_from",
    ]
    list_filter = ["currency", ("tenant", admin.EmptyFieldListFilter)]
    search_fields = ["model__name", "tenant__slug"]
    list_select_related = ["model", "tenant"]
    raw_id_fields = ["model", "tenant"]
    date_hierarchy = "effective_from"

    def save_model(self, request, obj, form, change):
        price_save(price=obj, actor=Actor(source="admin", user=request.user))

    def delete_view(self, request, object_id, extra_context=None):
        # The confirmation page previews what deleting the price does to past costs.
        price = ModelPrice.objects.filter(pk=object_id).select_related("model").first()
        if price is not None and request.method == "GET":
            extra_context = {**(extra_context or {}), "preview": price_preview(original=price, new=None)}
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj):
        price_delete(price=obj, actor=Actor(source="admin", user=request.user))

    def delete_queryset(self, request, queryset):
        for price in queryset:
            price_delete(price=price, actor=Actor(source="admin", user=request.user))


@admin.register(PriceChange)
class PriceChangeAdmin(admin.ModelAdmin):
    """The audit trail of prices: read-only."""

    list_display = ["changed_at", "action", "model", "tenant", "actor", "source", "old_terms", "new_terms"]
    list_select_related = ["model", "tenant"]
    list_filter = ["action", "source", ("tenant", admin.EmptyFieldListFilter)]
    search_fields = ["model__name", "tenant__slug", "actor"]
    raw_id_fields = ["price", "model", "tenant", "changed_by"]
    date_hierarchy = "changed_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UnpricedModelAlert)
class UnpricedModelAlertAdmin(admin.ModelAdmin):
    """Models a tenant used without a price, each told once (``usage.budgets.unpriced``): read-only.
    Deleting one lets it fire again."""

    list_display = ["created_at", "tenant", "model", "first_day", "calls", "tokens"]
    list_select_related = ["tenant", "model"]
    search_fields = ["model__name", "tenant__slug"]
    raw_id_fields = ["tenant", "model"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(CallRecord)
class CallRecordAdmin(BigTableAdmin):
    list_display = ["request_id", "tenant", "api_key", "model", "occurred_at", "input_tokens", "output_tokens"]
    list_select_related = ["tenant", "api_key", "model"]
    raw_id_fields = ["tenant", "api_key", "model"]
    search_fields = ["request_id"]
    search_help_text = (
        "The beginning of a request id, or all of it (case-sensitive, e.g. req-2026-11). "
        "Pick a tenant to list its calls by time, newest first."
    )
    list_filter = ["tenant"]
    # A column click would sort millions of rows: the order is the one an index serves.
    sortable_by = ()

    def get_ordering(self, request):
        # Newest first by time where an index serves it: (tenant, occurred_at) in each monthly
        # partition, merged backwards, once a tenant is picked. Across tenants no index leads with
        # the time (one would be kept up on every stored call), so the newest stored come first:
        # the primary key (id, occurred_at).
        if request.GET.get("tenant__id__exact"):
            return ["-occurred_at", "-id"]
        return ["-id"]

    def get_search_results(self, request, queryset, search_term):
        # Django's search is an UPPER(...) LIKE '%term%' that no index serves. A request id's
        # beginning (the whole id included) is a LIKE 'term%' that the varchar_pattern_ops index on
        # request_id serves in any collation (migration 0005); a trailing * is accepted as before.
        term = search_term.strip().rstrip("*")
        if not term:
            return queryset, False
        return queryset.filter(request_id__startswith=term), False


class RollupAdmin(BigTableAdmin):
    list_select_related = ["tenant", "api_key", "model"]
    raw_id_fields = ["tenant", "api_key", "model"]
    list_filter = ["tenant"]
    search_fields = ["model__name", "api_key__public_id"]


@admin.register(UsageDaily)
class UsageDailyAdmin(RollupAdmin):
    list_display = ["day", "tenant", "api_key", "model", "calls", "input_tokens", "output_tokens"]
    ordering = ["-day"]


@admin.register(UsageHourly)
class UsageHourlyAdmin(RollupAdmin):
    list_display = ["hour", "tenant", "api_key", "model", "calls", "input_tokens", "output_tokens"]
    ordering = ["-hour"]


@admin.register(DirtyDay)
class DirtyDayAdmin(admin.ModelAdmin):
    list_display = ["tenant", "day", "marked_at"]
    list_filter = ["tenant"]
    list_select_related = ["tenant"]
    raw_id_fields = ["tenant"]


@admin.register(UsageDailyModel)
class UsageDailyModelAdmin(RollupAdmin):
    list_display = ["day", "tenant", "model", "calls", "input_tokens", "output_tokens"]
    list_select_related = ["tenant", "model"]
    raw_id_fields = ["tenant", "model"]
    search_fields = ["model__name"]
    ordering = ["-day"]


# --- Budgets ----------------------------------------------------------------------------------


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "api_key", "metric", "amount", "currency", "period", "enforce", "state"]
    list_filter = ["metric", "period", "enforce", "state"]
    list_select_related = ["tenant", "api_key"]
    search_fields = ["name", "tenant__slug"]
    raw_id_fields = ["tenant", "api_key"]
    readonly_fields = ["webhook_salt", "state", "state_spent", "state_period_start", "state_at"]

    # Budgets are made and changed on the Budgets page or with create_budget, whose form checks
    # currencies, thresholds and webhook URLs; here they are read and, if need be, deleted.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AlertDeliveryInline(admin.TabularInline):
    model = AlertDelivery
    fields = ("channel", "delivery_id", "status", "attempts", "log", "delivered_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(BudgetAlert)
class BudgetAlertAdmin(BigTableAdmin):
    """The alert history: which threshold of which budget fired in which period."""

    list_display = ["created_at", "budget", "tenant", "period_start", "kind", "threshold", "spent", "limit"]
    list_filter = ["kind"]
    list_select_related = ["budget__tenant"]
    raw_id_fields = ["budget"]
    date_hierarchy = None
    inlines = [AlertDeliveryInline]

    @admin.display(ordering="budget__tenant__slug")
    def tenant(self, obj):
        return obj.budget.tenant.slug


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(BigTableAdmin):
    list_display = ["created_at", "budget", "alert", "channel", "status", "attempts", "delivery_id", "delivered_at"]
    list_filter = ["status", "channel"]
    list_select_related = ["budget", "alert"]
    search_fields = ["=delivery_id"]
    raw_id_fields = ["budget", "alert"]


# --- Monitors (usage.monitors) ------------------------------------------------------------------


class MonitorEventInline(admin.TabularInline):
    model = MonitorEvent
    fields = ("kind", "value", "calls", "window_start", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Monitor)
class MonitorAdmin(admin.ModelAdmin):
    """Where an operator sets a tenant's rules (the form's ``clean`` keeps key and budget in the tenant)."""

    list_display = ["name", "tenant", "metric", "threshold", "model", "api_key", "window_minutes", "min_calls", "state"]
    list_filter = ["metric", "state"]
    list_select_related = ["tenant", "model", "api_key"]
    search_fields = ["name", "tenant__slug"]
    raw_id_fields = ["tenant", "api_key", "model", "channels"]
    readonly_fields = ["state", "value", "evaluated_at"]
    inlines = [MonitorEventInline]
