"""Review of issue 25 item 9: a budget saved before the 10-threshold limit (migration 0009 adds a
validator, it does not change stored rows) still fans out into at most 10 alerts per period."""

from usage.budgets import services
from usage.models import MAX_BUDGET_THRESHOLDS, AlertDelivery, Budget, BudgetAlert

from .helpers import budget, spend


def test_a_budget_stored_with_more_than_10_thresholds_fires_at_most_10(tenant, api_key, llm, committed):
    b = budget(tenant, amount=1000, emails="ops@acme.test")
    Budget.objects.filter(pk=b.pk).update(thresholds=list(range(1, 1001)))  # as saved before the limit
    b.refresh_from_db()
    spend(tenant, api_key, llm, 1000)
    committed(services.budget_evaluate, budget=b)
    thresholds = sorted(BudgetAlert.objects.filter(budget=b, kind="threshold").values_list("threshold", flat=True))
    assert thresholds == list(range(1, MAX_BUDGET_THRESHOLDS + 1))
    assert AlertDelivery.objects.filter(budget=b).count() == MAX_BUDGET_THRESHOLDS
