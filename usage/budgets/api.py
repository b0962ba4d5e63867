"""``GET /api/v1/budgets``: the tenant's budgets with their current state."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from usage.api.schema import responses
from usage.api.scope import TenantParams, api_tenant
from usage.api.views import TenantAPIView
from usage.budgets.selectors import budget_status, tenant_budgets


class BudgetStatusSerializer(serializers.Serializer):
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    spent = serializers.JSONField(
        help_text='The exact amount as a plain decimal string for cost budgets ("0.3164304"), an integer for token '
        "budgets."
    )
    remaining = serializers.JSONField(help_text="Like spent.")
    percent = serializers.CharField()
    projected = serializers.JSONField(
        help_text="Like spent; for cost budgets to 11 decimals (the projection divides by the run-rate days)."
    )
    projected_percent = serializers.CharField()
    projection_method = serializers.CharField()
    state = serializers.ChoiceField(choices=["within", "warning", "exceeded"])
    unpriced_tokens = serializers.IntegerField()
    unpriced_calls = serializers.IntegerField(help_text="Calls with no price in force, not in spent.")


class BudgetSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    api_key = serializers.CharField(allow_null=True, help_text="Public id; null for a tenant-wide budget.")
    metric = serializers.ChoiceField(choices=["cost", "tokens"])
    amount = serializers.CharField()
    currency = serializers.CharField(allow_null=True)
    period = serializers.ChoiceField(choices=["month", "week", "day"])
    week_start = serializers.IntegerField()
    timezone = serializers.CharField()
    thresholds = serializers.ListField(child=serializers.IntegerField())
    enforce = serializers.BooleanField()
    status = BudgetStatusSerializer()


class BudgetListSerializer(serializers.Serializer):
    results = BudgetSerializer(many=True)


def budget_as_api(budget, status):
    return {
        "id": budget.pk,
        "name": budget.name,
        "api_key": budget.api_key.public_id if budget.api_key_id else None,
        "metric": budget.metric,
        "amount": format(budget.amount.normalize(), "f"),
        "currency": budget.currency or None,
        "period": budget.period,
        "week_start": budget.week_start,
        "timezone": budget.tenant.timezone,
        "thresholds": budget.thresholds,
        "enforce": budget.enforce,
        "status": status.as_api(),
    }


@extend_schema(tags=["budgets"], parameters=[TenantParams], responses=responses(BudgetListSerializer))
class BudgetListView(TenantAPIView):
    """The tenant's budgets and the state of each in its current period (the Budgets page's numbers)."""

    def get(self, request):
        tenant = api_tenant(request)
        results = [budget_as_api(b, budget_status(budget=b)) for b in tenant_budgets(tenant=tenant)]
        return Response({"results": results})
