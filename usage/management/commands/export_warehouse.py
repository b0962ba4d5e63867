"""``manage.py export_warehouse``: the ledger and daily rollups as Parquet on S3-compatible storage
(``usage.warehouse``), one partition per tenant and local day, with a line per partition."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Tenant
from usage import warehouse


class Command(BaseCommand):
    help = "Export calls and daily rollups as Parquet to S3-compatible storage (complete partitions are skipped)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bucket", default=settings.WAREHOUSE_BUCKET, help="Bucket (default WAREHOUSE_BUCKET).")
        parser.add_argument(
            "--prefix", default=settings.WAREHOUSE_PREFIX, help="Key prefix (default WAREHOUSE_PREFIX)."
        )
        parser.add_argument("--tenant", help="Tenant slug; default: every tenant.")
        parser.add_argument(
            "--start", type=dt.date.fromisoformat, help="First local day; default: the first with calls."
        )
        parser.add_argument("--end", type=dt.date.fromisoformat, help="Last local day; default: yesterday.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["bucket"]:
            raise CommandError("Give --bucket (or set WAREHOUSE_BUCKET).")
        if options["start"] and options["end"] and options["end"] < options["start"]:
            raise CommandError("--end is before --start.")
        tenants = Tenant.objects.order_by("slug")
        if options["tenant"]:
            tenants = tenants.filter(slug=options["tenant"])
            if not tenants.exists():
                raise CommandError(f"No tenant with slug '{options['tenant']}'.")
        written, skipped = warehouse.warehouse_export(
            tenants=tenants,
            bucket=options["bucket"],
            prefix=options["prefix"],
            start=options["start"],
            end=options["end"],
            progress=self._progress,
        )
        self.stdout.write(self.style.SUCCESS(f"Done: {written} partitions written, {skipped} already complete."))

    def _progress(self, partition: warehouse.Partition, wrote: bool) -> None:
        state = "written" if wrote else "complete, skipped"
        self.stdout.write(f"{partition.tenant.slug} {partition.day}: {state}")
        self.stdout.flush()
