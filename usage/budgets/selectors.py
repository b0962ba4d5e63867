"""Reads of budgets: what has been spent in the current period, and where it is heading.

Spent is the ``UsageQuery`` of the budget's key over the period's local days up to today (its
``cost()``, or its ``totals()`` for a token budget): the page's numbers, so a budget and the
page never disagree. Amounts in other currencies than the budget's are not counted (currencies
are never converted); tokens with no price in force are reported as ``unpriced_tokens``.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from django.db.models import Q
from django.utils import timezone

from usage.budgets.periods import RUN_RATE_DAYS, budget_period, local_midnight, run_rate_period
from usage.localtime import tenant_today
from usage.models import Budget
from usage.reporting.costs import AMOUNT_DECIMALS
from usage.reporting.money import amount_text, money_text
from usage.reporting.periods import Period
from usage.reporting.query import UsageQuery
from usage.reporting.unpriced import unpriced_total

_PRECISION = 60
PROJECTION_METHOD = (
    f"Projected = spent so far + the average daily amount of the last {RUN_RATE_DAYS} complete local days"
    " × the time left in the period: the rest of today (its share of the local day's hours) plus the days"
    " after today."
)


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    period: Period
    today: dt.date
    spent: Decimal
    projected: Decimal
    daily_rate: Decimal
    unpriced_tokens: int = 0
    unpriced_calls: int = 0

    @property
    def limit(self):
        return self.budget.amount

    @property
    def remaining(self):
        return max(self.limit - self.spent, Decimal(0))

    @property
    def percent(self):
        return _percent(self.spent, self.limit)

    @property
    def projected_percent(self):
        return _percent(self.projected, self.limit)

    @property
    def warn_at(self):
        """The highest threshold below 100%: from it on the state is "warning"."""
        below = [t for t in self.budget.thresholds if t < 100]
        return max(below) if below else None

    def reached(self, threshold):
        """Whether spent is at ``threshold`` percent of the limit or more, compared exactly (the
        ``percent`` shown is rounded to 0.1)."""
        return self.spent * 100 >= threshold * self.limit

    @property
    def forecast_exceeds(self):
        return self.projected > self.limit

    @property
    def state(self):
        if self.spent >= self.limit:
            return Budget.State.EXCEEDED
        if self.forecast_exceeds or (self.warn_at is not None and self.reached(self.warn_at)):
            return Budget.State.WARNING
        return Budget.State.WITHIN

    @property
    def bar_percent(self):
        return min(self.percent, Decimal(100))

    @property
    def projected_bar_percent(self):
        return min(self.projected_percent, Decimal(100))

    def formatted(self, value):
        if self.budget.metric == Budget.Metric.TOKENS:
            return f"{int(value):,}"
        return money_text(value, self.budget.currency)

    @property
    def spent_text(self):
        return self.formatted(self.spent)

    @property
    def limit_text(self):
        return self.formatted(self.limit)

    @property
    def projected_text(self):
        return self.formatted(self.projected)

    def as_api(self):
        return {
            "period_start": self.period.start.isoformat(),
            "period_end": self.period.end.isoformat(),
            "spent": _number(self.spent, self.budget),
            "remaining": _number(self.remaining, self.budget),
            "percent": str(self.percent),
            "projected": _number(self.projected, self.budget),
            "projected_percent": str(self.projected_percent),
            "projection_method": PROJECTION_METHOD,
            "state": self.state,
            "unpriced_tokens": self.unpriced_tokens,
            "unpriced_calls": self.unpriced_calls,
        }


def _percent(value, limit):
    return (Decimal(100) * value / limit).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)


def _number(value, budget):
    if budget.metric == Budget.Metric.TOKENS:
        return int(value)
    # Exact; only a projection (a division by the run-rate days) is cut at an exact line's decimals.
    return amount_text(value.quantize(Decimal(1).scaleb(-AMOUNT_DECIMALS), rounding=ROUND_HALF_EVEN), budget.currency)


def budget_spent(*, budget, period):
    """(spent, unpriced tokens) of the budget's scope over the local dates of ``period``."""
    query = UsageQuery(budget.tenant, period, api_key=budget.api_key)
    if budget.metric == Budget.Metric.TOKENS:
        return Decimal(query.totals().total_tokens), 0
    cost = query.cost()
    return cost.amounts.get(budget.currency, Decimal(0)), cost.unpriced_tokens


def budget_unpriced_calls(*, budget, period):
    """Calls in the budget's scope and period with no price in force (from the grid ``cost`` read)."""
    if budget.metric == Budget.Metric.TOKENS:
        return 0
    return unpriced_total(UsageQuery(budget.tenant, period, api_key=budget.api_key)).calls


def days_left(tenant, period, now):
    """The local days left in ``period`` at ``now``: the rest of today as a share of its length
    (23, 24 or 25 hours) plus the whole days after it."""
    today = tenant_today(tenant, now)
    start, end = local_midnight(tenant, today), local_midnight(tenant, today + dt.timedelta(days=1))
    micro = dt.timedelta(microseconds=1)
    rest_of_today = Decimal((end - now) // micro) / Decimal((end - start) // micro)
    return rest_of_today + (period.end - today).days


def budget_status(*, budget, now=None):
    """The budget's state at ``now`` (default: now), in the period that contains that local day."""
    now = now or timezone.now()
    today = tenant_today(budget.tenant, now)
    period = budget_period(budget, today)
    spent, unpriced = budget_spent(budget=budget, period=Period(period.start, today))
    recent, _ = budget_spent(budget=budget, period=run_rate_period(today))
    with localcontext(prec=_PRECISION):
        # Exact sums in, no rounding before the comparison with the limit: at this precision the
        # quotient is off by far less than the 1e-11 that separates two different exact sums.
        rate = recent / RUN_RATE_DAYS
        projected = spent + rate * days_left(budget.tenant, period, now)
    if budget.metric == Budget.Metric.TOKENS:
        projected = projected.to_integral_value(rounding=ROUND_HALF_EVEN)
    calls = budget_unpriced_calls(budget=budget, period=Period(period.start, today))
    return BudgetStatus(budget, period, today, spent, projected, rate, unpriced, calls)


def budget_status_for_period(*, budget, period):
    """Spent over a whole past period (for late calls and price changes); no projection."""
    spent, unpriced = budget_spent(budget=budget, period=period)
    calls = budget_unpriced_calls(budget=budget, period=period)
    return BudgetStatus(budget, period, period.end, spent, spent, Decimal(0), unpriced, calls)


def tenant_budgets(*, tenant):
    return list(Budget.objects.filter(tenant=tenant).select_related("tenant", "api_key").order_by("name", "pk"))


def budgets_for_key(*, key):
    """The enforcing budgets that apply to an API key: its own and its tenant's."""
    scope = Q(api_key__isnull=True) | Q(api_key=key)
    return list(Budget.objects.filter(scope, tenant_id=key.tenant_id, enforce=True).select_related("tenant", "api_key"))


def budget_lines(*, tenant, api_key=None):
    """The Usage Statistics page's budget lines: the tenant's budgets, and the selected key's."""
    budgets = Budget.objects.filter(tenant=tenant).filter(Q(api_key__isnull=True) | Q(api_key=api_key))
    return [budget_status(budget=b) for b in budgets.select_related("tenant", "api_key").order_by("name", "pk")]
