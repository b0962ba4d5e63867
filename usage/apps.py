from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "Usage"

    def ready(self):
        from . import signals  # noqa: F401  (registers SQLite helper functions)
