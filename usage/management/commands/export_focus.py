"""``manage.py export_focus``: FOCUS 1.2 CSV of every tenant (or one) for a range of local days.

``--output`` an existing folder (or a path ending in "/"): one file per tenant,
``focus-<slug>-<start>-<end>.csv``; otherwise one file with every tenant's rows under one header.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Tenant
from usage.reporting import focus
from usage.reporting.periods import Period
from usage.reporting.query import UsageQuery


class Command(BaseCommand):
    help = "Write FOCUS 1.2 cost and usage CSV for every tenant (or one) and a range of local days."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--start", required=True, type=dt.date.fromisoformat, help="First local day, YYYY-MM-DD.")
        parser.add_argument("--end", required=True, type=dt.date.fromisoformat, help="Last local day, YYYY-MM-DD.")
        parser.add_argument("--tenant", help="Tenant slug; default: every tenant.")
        parser.add_argument("--output", required=True, type=Path, help="A folder (a file per tenant) or a file.")

    def handle(
        self, *args: Any, start: dt.date, end: dt.date, tenant: str | None, output: Path, **options: Any
    ) -> None:
        if end < start:
            raise CommandError("--end is before --start.")
        tenants = list(self._tenants(tenant))
        per_tenant = output.is_dir() or str(output).endswith("/")
        if per_tenant:
            output.mkdir(parents=True, exist_ok=True)
            for index, each in enumerate(tenants, 1):
                path = output / f"focus-{each.slug}-{start}-{end}.csv"
                with path.open("w", encoding="utf-8", newline="") as out:
                    self._write(out, [each], start, end, progress=(index, len(tenants)))
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            with output.open("w", encoding="utf-8", newline="") as out:
                self._write(out, tenants, start, end)
        self.stdout.write(self.style.SUCCESS(f"Exported {len(tenants)} tenant(s) to {output}."))

    def _tenants(self, slug: str | None) -> Any:
        tenants = Tenant.objects.order_by("slug")
        if slug:
            tenants = tenants.filter(slug=slug)
            if not tenants.exists():
                raise CommandError(f"No tenant with slug '{slug}'.")
        return tenants

    def _write(
        self, out: TextIO, tenants: list[Tenant], start: dt.date, end: dt.date, progress: tuple[int, int] | None = None
    ) -> None:
        """One header, then each tenant's rows; ``progress``: (this, of) when tenants go to separate files."""
        out.write(next(focus.csv_lines([])))
        for index, tenant in enumerate(tenants, 1):
            rows = 0
            for line in focus.csv_lines([UsageQuery(tenant, Period(start, end))], header=False):
                out.write(line)
                rows += 1
            number, total = progress or (index, len(tenants))
            self.stdout.write(f"[{number}/{total}] {tenant.slug}: {rows} rows")
