"""``manage.py create_budget``: a budget from the command line, through the page's own form."""

from django.core.management.base import CommandError

from accounts.management.operator import OperatorCommand, tenant_by_slug
from usage.budgets import services
from usage.budgets.api import budget_as_api
from usage.budgets.delivery import standard_webhook_secret
from usage.budgets.forms import BudgetForm


class Command(OperatorCommand):
    help = "Create a budget of a tenant or of one of its API keys; prints a webhook secret once."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--api-key", dest="api_key", default="", help="Public id of one of the tenant's keys.")
        parser.add_argument("--name", default="", help="Default: '<period>ly budget'.")
        parser.add_argument("--amount", required=True, help="Currency amount, or tokens with --tokens.")
        parser.add_argument("--currency", default="USD", help="ISO 4217 code (default USD).")
        parser.add_argument("--tokens", action="store_true", help="A budget of tokens instead of cost.")
        parser.add_argument("--period", choices=["month", "week", "day"], default="month")
        parser.add_argument("--week-start", dest="week_start", type=int, default=0, help="0 = Monday ... 6 = Sunday.")
        parser.add_argument("--threshold", action="append", default=[], help="Percent; repeatable (default 50 80 100).")
        parser.add_argument(
            "--webhook",
            default="",
            help="http(s) URL to POST signed alerts to (a public address, or in WEBHOOK_ALLOWED_NETWORKS).",
        )
        parser.add_argument("--email", action="append", default=[], help="Address to alert; repeatable.")
        parser.add_argument("--enforce", action="store_true", help="Report the state in keys/verify.")

    def handle(self, *args, **options):
        tenant = tenant_by_slug(options["tenant"])
        data = {
            "name": options["name"] or f"{options['period']}ly budget".replace("dayly", "daily"),
            "api_key": options["api_key"],
            "metric": "tokens" if options["tokens"] else "cost",
            "amount": options["amount"],
            "currency": options["currency"],
            "period": options["period"],
            "week_start": options["week_start"],
            "thresholds": ",".join(options["threshold"]),
            "enforce": "on" if options["enforce"] else "",
            "emails": ",".join(options["email"]),
            "webhook_url": options["webhook"],
        }
        form = BudgetForm(data, tenant=tenant)
        if not form.is_valid():
            errors = "; ".join(f"{field}: {' '.join(map(str, messages))}" for field, messages in form.errors.items())
            raise CommandError(f"Budget not created: {errors}")
        budget, secret = services.budget_create(tenant=tenant, data=form.budget_data())
        status = services.budget_evaluate(budget=budget)
        standard = standard_webhook_secret(budget) if secret else None
        result = {**budget_as_api(budget, status), "tenant": tenant.slug, "webhook_secret": secret}
        result["standard_webhooks_secret"] = standard
        lines = [
            f"Created budget {budget.pk} “{budget.name}” of {tenant.slug}: {status.state}, {status.percent}% used."
        ]
        if secret:
            lines.append(f"Webhook signing secret, Standard Webhooks (shown once): {standard}")
            lines.append(f"The same key in hex, for the legacy X-Usage-Signature (shown once): {secret}")
        self.emit(options, result, lines)
