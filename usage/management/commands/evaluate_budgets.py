"""``manage.py evaluate_budgets``: what beat runs every BUDGET_EVALUATE_SECONDS, for operators."""

from django.core.management.base import BaseCommand

from usage.budgets.services import budgets_evaluate_all


class Command(BaseCommand):
    help = "Evaluate every budget (state, alerts) and re-enqueue alert deliveries left pending."

    def handle(self, *args, **options):
        count = budgets_evaluate_all()
        self.stdout.write(self.style.SUCCESS(f"Evaluated {count} budgets."))
