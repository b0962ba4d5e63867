"""Stored day costs become exact (issue 26, "Exact money").

``cost_amount`` kept 4 decimals of a sum of lines each rounded to the minor unit. It now keeps
11 (an exact line cost's most: the rates' 8 decimals plus 3 for "per 1K"), and the stored costs
are cleared: they are a cache of the rollups, computed again, exactly, by the next read of each
closed day. (Their ``cost_terms`` would not match anyway: ``day_costs.TERMS_FORMAT`` now leads
the terms, so a row stored by the previous release is never read even without this step.)
"""

from django.db import migrations, models


def clear_stored_costs(apps, schema_editor):
    apps.get_model("usage", "UsageDailyModel").objects.exclude(cost_revision=None).update(
        cost_revision=None, cost_terms=None, cost_currency=None, cost_amount=None, cost_unpriced=None
    )


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0010_model_aliases"),
    ]

    operations = [
        migrations.AlterField(
            model_name="usagedailymodel",
            name="cost_amount",
            field=models.DecimalField(blank=True, decimal_places=11, max_digits=40, null=True),
        ),
        migrations.RunPython(clear_stored_costs, migrations.RunPython.noop, elidable=True),
    ]
