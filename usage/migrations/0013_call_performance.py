"""Performance of a call on the ledger (issue 27) and its hourly rollup.

The five columns are nullable, so adding them to the partitioned ledger (PostgreSQL: ALTER TABLE
on the parent reaches every partition) rewrites no row; the check is validated once over the ledger.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("usage", "0012_price_audit"),
    ]

    operations = [
        migrations.CreateModel(
            name="PerformanceHourly",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("hour", models.DateTimeField()),
                ("metric", models.SmallIntegerField()),
                ("bucket", models.SmallIntegerField()),
                ("calls", models.BigIntegerField()),
            ],
            options={
                "verbose_name_plural": "performance hourly",
            },
        ),
        migrations.AddField(
            model_name="callrecord",
            name="duration_ms",
            field=models.IntegerField(blank=True, help_text="Request to last byte, in milliseconds.", null=True),
        ),
        migrations.AddField(
            model_name="callrecord",
            name="error_type",
            field=models.CharField(
                blank=True,
                choices=[
                    ("rate_limited", "Rate limited"),
                    ("timeout", "Timeout"),
                    ("server_error", "Server error"),
                    ("client_error", "Client error"),
                    ("cancelled", "Cancelled"),
                    ("content_filter", "Content filter"),
                    ("other", "Other"),
                ],
                max_length=16,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="callrecord",
            name="http_status",
            field=models.SmallIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="callrecord",
            name="status",
            field=models.CharField(blank=True, choices=[("ok", "OK"), ("error", "Error")], max_length=5, null=True),
        ),
        migrations.AddField(
            model_name="callrecord",
            name="time_to_first_token_ms",
            field=models.IntegerField(blank=True, null=True),
        ),
        migrations.AddConstraint(
            model_name="callrecord",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("duration_ms__isnull", True), ("duration_ms__gte", 0), _connector="OR"),
                    models.Q(
                        ("time_to_first_token_ms__isnull", True), ("time_to_first_token_ms__gte", 0), _connector="OR"
                    ),
                    models.Q(("error_type__isnull", True), ("status", "error"), _connector="OR"),
                ),
                name="callrecord_performance_valid",
            ),
        ),
        migrations.AddField(
            model_name="performancehourly",
            name="api_key",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.apikey"
            ),
        ),
        migrations.AddField(
            model_name="performancehourly",
            name="model",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="usage.model"),
        ),
        migrations.AddField(
            model_name="performancehourly",
            name="tenant",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.tenant"
            ),
        ),
        migrations.AddConstraint(
            model_name="performancehourly",
            constraint=models.UniqueConstraint(
                fields=("tenant", "hour", "api_key", "model", "metric", "bucket"), name="performancehourly_unique"
            ),
        ),
        # On the partitioned parent: every partition, present or future, gets it.
        migrations.AddIndex(
            model_name="callrecord",
            index=models.Index(
                condition=models.Q(("status", "error")),
                fields=["tenant", "occurred_at"],
                name="callrecord_tenant_errors",
            ),
        ),
    ]
