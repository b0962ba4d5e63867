from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "Usage"

    def ready(self):
        from . import signals  # noqa: F401  (registers SQLite helper functions)
        from .budgets import tasks  # noqa: F401  (registers the budget tasks with Celery)
