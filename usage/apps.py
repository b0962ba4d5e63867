from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "Usage"

    def ready(self) -> None:
        # Imported for their side effects: localtime and rollups.performance register the SQLite
        # functions of the rollup SQL, signals hands a tenant's zone change to the recompute, the tasks modules register
        # with Celery (and usage.tasks enqueues the recompute of days marked dirty), budgets.receivers
        # subscribes the budgets to ingestion's calls_stored.
        from usage import localtime, signals, tasks  # noqa: F401
        from usage.budgets import receivers as budget_receivers  # noqa: F401
        from usage.budgets import tasks as budget_tasks  # noqa: F401
        from usage.monitors import tasks as monitor_tasks  # noqa: F401
        from usage.rollups import performance  # noqa: F401
