"""Fewer indexes to maintain per stored call (BENCHMARKS.md "Ingestion A/B ... lean indexes").

- The ledger's and the claims' own tenant indexes go: (tenant, occurred_at) and the claims'
  primary key (tenant, request_id) lead with the tenant and serve every tenant lookup.
- On PostgreSQL the claims' time index becomes a BRIN index: claims arrive in about time order,
  and its only reader is retention, which deletes the claims before the horizon window by window
  (``usage.ledger.retention``). The model's state keeps a plain index, which is what SQLite has.
"""

import django.db.models.deletion
from django.db import migrations, models

CLAIMS = "usage_callrequest"


def brin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX callrequest_time")
        schema_editor.execute(
            f"CREATE INDEX callrequest_time ON {CLAIMS} USING brin (occurred_at) WITH (autosummarize = on)"
        )


def btree(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX callrequest_time")
        schema_editor.execute(f"CREATE INDEX callrequest_time ON {CLAIMS} (occurred_at)")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("usage", "0007_stored_day_costs"),
    ]

    # Only the indexes change: Django's own AlterField would also drop and re-add (re-validate) the
    # ledger's tenant foreign key, a scan of every call.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="callrecord",
                    name="tenant",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="accounts.tenant",
                    ),
                ),
                migrations.AlterField(
                    model_name="callrequest",
                    name="tenant",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="accounts.tenant",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "usage_callrecord_tenant_id_61164654"',
                    'CREATE INDEX "usage_callrecord_tenant_id_61164654" ON "usage_callrecord" ("tenant_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "usage_callrequest_tenant_id_b860127e"',
                    'CREATE INDEX "usage_callrequest_tenant_id_b860127e" ON "usage_callrequest" ("tenant_id")',
                ),
            ],
        ),
        migrations.RunPython(brin, btree),
    ]
