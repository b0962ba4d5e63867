"""``GET /api/v1/reports/monthly``: the month-end expense report of the Reports page, as JSON.

The page, its CSV and this endpoint all build on ``usage.reporting.costs.expense_report`` with the same
form, so their rows and totals are the same to the last digit.
"""

import json

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from usage.api.schema import responses
from usage.api.scope import api_tenant
from usage.api.serializers import ClassCostSerializer, CostSerializer, PeriodSerializer, TotalsSerializer
from usage.api.throttling import AccessTokenThrottle
from usage.localtime import tenant_today
from usage.reporting.costs import class_costs_as_api, expense_report
from usage.reporting.filters import MonthlyReportForm
from usage.reporting.money import amount_text

CLASS_RATES = ("cache_write_per_1k", "cache_write_1h_per_1k", "reasoning_per_1k")


def _key_fields(api_key):
    return {"api_key": api_key.public_id, "api_key_name": api_key.name}


def _price(use):
    price = use.price
    return {
        "model": price.model.name,
        "scope": "platform" if price.tenant_id is None else "contract",
        "currency": price.currency,
        "input_per_1k": str(price.input_per_1k),
        "output_per_1k": str(price.output_per_1k),
        "cached_input_per_1k": None if price.cached_input_per_1k is None else str(price.cached_input_per_1k),
        "request_fee": None if price.request_fee is None else str(price.request_fee),
        "pricing_rules": json.loads(price.pricing_rules) if price.pricing_rules else None,
        **{name: None if getattr(price, name) is None else str(getattr(price, name)) for name in CLASS_RATES},
        "effective_from": price.effective_from.isoformat(),
        "first_day": use.first_day.isoformat(),
        "last_day": use.last_day.isoformat(),
    }


def _rates(row):
    """A call-priced row's cost by the rates applied (service tier, context tier, window); [] for flat prices."""
    currency = row.currency or "USD"
    return [
        {"rates": name, "amount": None if amount is None else amount_text(amount, currency), "tokens": tokens}
        for name, (amount, tokens) in sorted(row.rates.items())
    ]


def report_as_json(tenant, report):
    """The report as plain JSON types: amounts as decimal strings, never floats."""
    period, api_key = report.filters.period, report.filters.api_key
    rows = [
        {**_key_fields(row.api_key), "model": row.model.name, "currency": row.currency}
        | row.totals.as_dict()
        | {
            "cost": row.cost.as_api(),
            "rates": _rates(row),
            "cost_by_class": class_costs_as_api({row.currency: row.classes} if row.currency else {}),
        }
        for row in report.rows
    ]
    keys = [
        _key_fields(section.api_key) | section.totals.as_dict() | {"cost": section.cost.as_api()}
        for section in report.sections
    ]
    return {
        "month": f"{period.start:%Y-%m}",
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "timezone": tenant.timezone,
        "api_key": api_key.public_id if api_key else None,
        "rows": rows,
        "keys": keys,
        "totals": report.totals.as_dict(),
        "cost": report.cost.as_api(),
        "cost_by_class": class_costs_as_api(report.class_totals),
        "unpriced_models": report.cost.unpriced_models,
        "unpriced_calls": report.unpriced_calls,
        "prices": [_price(use) for use in report.prices],
    }


def _cost_list(help_text):
    return CostSerializer(
        many=True, help_text=f"{help_text} One object per currency, by code; amount 0 when nothing is priced."
    )


class ReportKeySerializer(TotalsSerializer):
    api_key = serializers.CharField(help_text="Public id of the API key.")
    api_key_name = serializers.CharField(help_text="Name of the API key; a revoked key keeps it.")
    cost = _cost_list("Cost of the key's usage in the month.")


class ReportRowSerializer(ReportKeySerializer):
    model = serializers.CharField(help_text="Name of the model.")
    currency = serializers.CharField(
        allow_null=True, help_text="Currency of the prices applied to this row; null for the unpriced tokens."
    )
    cost_by_class = ClassCostSerializer(
        many=True, help_text="The row's exact cost per token class (adds up to its cost); empty when unpriced."
    )


class ReportPriceSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="Name of the model.")
    scope = serializers.ChoiceField(
        choices=["platform", "contract"], help_text="The platform price, or the tenant's own contract price."
    )
    currency = serializers.CharField(help_text="ISO 4217 code.")
    input_per_1k = serializers.CharField(help_text="Price of 1,000 input tokens (decimal string).")
    output_per_1k = serializers.CharField(help_text="Price of 1,000 output tokens (decimal string).")
    cached_input_per_1k = serializers.CharField(
        allow_null=True, help_text="Price of 1,000 cached input tokens; null: they cost the input price."
    )
    cache_write_per_1k = serializers.CharField(
        allow_null=True, help_text="Price of 1,000 cache write tokens; null: they cost the input price."
    )
    cache_write_1h_per_1k = serializers.CharField(
        allow_null=True, help_text="Price of 1,000 one-hour cache write tokens; null: the cache write price."
    )
    reasoning_per_1k = serializers.CharField(
        allow_null=True, help_text="Price of 1,000 reasoning tokens; null: they cost the output price."
    )
    effective_from = serializers.DateField(help_text="Local date the price takes effect.")
    first_day = serializers.DateField(help_text="First local day of the month the price was applied to.")
    last_day = serializers.DateField(help_text="Last local day of the month the price was applied to.")


class MonthlyReportSerializer(PeriodSerializer):
    month = serializers.CharField(help_text="The month reported, YYYY-MM.")
    api_key = serializers.CharField(allow_null=True, help_text="Public id of the key reported; null for all keys.")
    rows = ReportRowSerializer(
        many=True, help_text="One row per key x model (x currency, if a price changed currency), by key and model."
    )
    keys = ReportKeySerializer(many=True, help_text="Subtotals per key, by key name.")
    totals = TotalsSerializer(help_text="Grand total of calls and tokens.")
    cost = _cost_list("Grand total, shaped like the usage summary's cost.")
    cost_by_class = ClassCostSerializer(
        many=True, help_text="The grand total's exact cost per token class, one object per priced currency."
    )
    unpriced_models = serializers.ListField(
        child=serializers.CharField(), help_text="Models with tokens that had no price in force (cost is partial)."
    )
    unpriced_calls = serializers.IntegerField(help_text="Calls with no price in force: not in the amounts.")
    prices = ReportPriceSerializer(many=True, help_text="The prices applied in the month.")


class MonthlyReportView(APIView):
    # Tenant resolution and rate limit are the general API's (usage.api.scope / throttling).
    throttle_classes = [AccessTokenThrottle]

    @extend_schema(
        tags=["reports"],
        summary="Month-end expense report",
        description="Calls, tokens and cost per API key x model for one month of the tenant's local days, "
        "with subtotals per key, the grand total (one cost object per currency) and the prices used. "
        "Amounts are exact: each line (local day x key x model) is tokens x rate and every total the exact "
        "sum of its lines; nothing is rounded.",
        parameters=[
            OpenApiParameter(
                "month",
                {"type": "string", "pattern": r"^([0-9]{4}-(0[1-9]|1[0-2]))?$"},
                description="YYYY-MM, a year from 1970 to 9998 (else 400); default the current local month.",
            ),
            OpenApiParameter(
                "api_key",
                str,
                description="Public id of one of the tenant's API keys (another tenant's is a 400); default all keys.",
            ),
            OpenApiParameter("tenant", str, description="Tenant slug (browser session of several tenants)."),
        ],
        responses=responses(MonthlyReportSerializer),
    )
    def get(self, request):
        tenant = api_tenant(request)
        form = MonthlyReportForm(request.query_params, tenant=tenant, today=tenant_today(tenant))
        if not form.is_valid():
            raise exceptions.ValidationError({field: list(messages) for field, messages in form.errors.items()})
        report = expense_report(query=form.usage_query())
        return Response(report_as_json(tenant, report))
