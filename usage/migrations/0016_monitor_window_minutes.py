"""Monitors: ``window_hours`` becomes ``window_minutes`` (issue 27: "error rate over 15 minutes").

Existing rules keep their window: N hours becomes N x 60 minutes, which is still read from the
hourly rollups as the last N local hours.
"""

from django.db import migrations, models
from django.db.models import F


def hours_to_minutes(apps, schema_editor):
    apps.get_model("usage", "Monitor").objects.update(window_minutes=F("window_hours") * 60)


def minutes_to_hours(apps, schema_editor):
    # Back: a window of minutes rounds up to the hours that hold it.
    Monitor = apps.get_model("usage", "Monitor")
    for monitor in Monitor.objects.all():
        monitor.window_hours = min(168, -(-monitor.window_minutes // 60))
        monitor.save(update_fields=["window_hours"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_two_factor_sso"),
        ("usage", "0015_call_prices"),
    ]

    operations = [
        migrations.AddField(
            model_name="monitor",
            name="window_minutes",
            field=models.PositiveSmallIntegerField(
                default=60,
                help_text="Minutes: a multiple of 60 is the last N local hours, the current one included (up to 168"
                " hours); any other, 5 to 1440, is the last M minutes.",
            ),
        ),
        migrations.RunPython(hours_to_minutes, minutes_to_hours),
        migrations.RemoveConstraint(model_name="monitor", name="monitor_window"),
        migrations.RemoveField(model_name="monitor", name="window_hours"),
        migrations.AddConstraint(
            model_name="monitor",
            constraint=models.CheckConstraint(
                condition=models.Q(("window_minutes__gte", 5), ("window_minutes__lte", 10080)),
                name="monitor_window_minutes",
            ),
        ),
    ]
