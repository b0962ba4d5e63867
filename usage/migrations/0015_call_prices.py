"""Prices that depend on the call (issue 26, item 3): the ledger's ``service_tier``, a price's
``request_fee`` and ``pricing_rules``, and the pricing-class rollup, filled from the ledger here so
that a rule added later reprices past days too (``usage.rollups.pricing``; calls already stored
reported no service tier). Days whose ledger was purged before this migration have no classes: a
call-priced price costs them as nothing is known of their calls' classes (README, Costs).
"""

import datetime as dt
import zoneinfo

import django.db.models.deletion
from django.db import migrations, models


def fill_classes(apps, schema_editor):
    from usage.rollups.pricing import recompute

    Tenant = apps.get_model("accounts", "Tenant")
    CallRecord = apps.get_model("usage", "CallRecord")
    with schema_editor.connection.cursor() as cursor:
        for tenant in Tenant.objects.all():
            first = CallRecord.objects.filter(tenant=tenant).order_by("occurred_at").first()
            last = CallRecord.objects.filter(tenant=tenant).order_by("-occurred_at").first()
            if first is None:
                continue
            tenant.tz = zoneinfo.ZoneInfo(tenant.timezone)
            start = dt.datetime.combine(first.occurred_at.astimezone(tenant.tz).date(), dt.time(), tzinfo=tenant.tz)
            end = last.occurred_at + dt.timedelta(seconds=1)
            recompute(cursor, tenant=tenant, start=start, end=end)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_two_factor_sso"),
        ("usage", "0014_monitors"),
    ]

    operations = [
        migrations.AddField(
            model_name="callrecord",
            name="service_tier",
            field=models.CharField(
                blank=True,
                choices=[("standard", "Standard"), ("batch", "Batch"), ("flex", "Flex"), ("priority", "Priority")],
                max_length=8,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="modelprice",
            name="pricing_rules",
            field=models.TextField(
                blank=True,
                default="",
                help_text="Context tiers, service tiers and time windows as JSON (README, Costs); empty: none.",
            ),
        ),
        migrations.AddField(
            model_name="modelprice",
            name="request_fee",
            field=models.DecimalField(
                blank=True, decimal_places=8, help_text="Fee per request (call), if any.", max_digits=18, null=True
            ),
        ),
        migrations.CreateModel(
            name="UsagePricingClass",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField()),
                ("service_tier", models.CharField(help_text="Empty: not reported (priced as standard).", max_length=8)),
                (
                    "band",
                    models.SmallIntegerField(help_text="How many context edges the calls' input tokens are above."),
                ),
                ("half_hour", models.DateTimeField(help_text="The UTC half-hour the calls started in.")),
                ("calls", models.BigIntegerField()),
                ("input_tokens", models.BigIntegerField()),
                ("output_tokens", models.BigIntegerField()),
                ("cached_input_tokens", models.BigIntegerField(help_text="Not reported counts 0 here.")),
                (
                    "api_key",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.apikey"
                    ),
                ),
                (
                    "model",
                    models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="usage.model"),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="accounts.tenant",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("tenant", "day", "api_key", "model", "service_tier", "band", "half_hour"),
                        name="usagepricingclass_unique",
                    )
                ],
            },
        ),
        migrations.RunPython(fill_classes, migrations.RunPython.noop),
    ]
