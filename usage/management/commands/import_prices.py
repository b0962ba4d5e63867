import datetime as dt
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.management.operator import tenant_by_slug
from usage.pricebook.importer import FORMATS, ImportResult, PriceFileError, prices_import
from usage.pricebook.services import Actor

# Names of the file that match no catalog model are counted; this many are named.
SHOWN_UNMATCHED = 10


class Command(BaseCommand):
    help = (
        "Import prices from a file: LiteLLM's price map (--format litellm; per-token USD prices become "
        "per-1K prices exactly) or this product's own JSON/CSV (--format native). Names are catalog model "
        "names or aliases. All or nothing; a price equal to the one in force is left alone, so a rerun "
        "changes nothing. Every change is kept in the price audit trail."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=FORMATS, default="native", dest="fmt")
        parser.add_argument(
            "--effective-from",
            metavar="DAY",
            type=dt.date.fromisoformat,
            help="YYYY-MM-DD the prices apply from (litellm: default today, UTC; native: rows without one).",
        )
        parser.add_argument("--tenant", metavar="SLUG", help="Import contract prices of this tenant.")
        parser.add_argument("--dry-run", action="store_true", help="Report what would change; save nothing.")

    def handle(self, *args: Any, file: Path, fmt: str, **options: Any) -> None:
        if not file.is_file():
            raise CommandError(f"No such file: {file}")
        tenant = tenant_by_slug(options["tenant"]) if options["tenant"] else None
        try:
            result = prices_import(
                file.read_text(encoding="utf-8"),
                fmt=fmt,
                actor=Actor(source="import_prices", name=f"import_prices {file.name}"),
                tenant=tenant,
                day=options["effective_from"],
                dry_run=options["dry_run"],
            )
        except (PriceFileError, ValidationError, UnicodeDecodeError) as error:
            raise CommandError(f"{file}: {error} (nothing was saved)") from error
        self._report(result, dry_run=options["dry_run"])

    def _report(self, result: ImportResult, *, dry_run: bool) -> None:
        verb = "would be " if dry_run else ""
        for label in result.added:
            self.stdout.write(f"added: {label}")
        for label in result.changed:
            self.stdout.write(f"changed: {label}")
        for model, keys in sorted(result.not_supported.items()):
            self.stdout.write(f"{model}: not imported (not supported yet): {', '.join(keys)}")
        for name in result.unpriceable:
            self.stdout.write(f"{name}: not imported (no input_cost_per_token / output_cost_per_token)")
        if result.unmatched:
            shown = ", ".join(result.unmatched[:SHOWN_UNMATCHED])
            more = len(result.unmatched) - SHOWN_UNMATCHED
            self.stdout.write(
                f"{len(result.unmatched)} name(s) match no catalog model or alias: {shown}"
                + (f" and {more} more" if more > 0 else "")
            )
        self.stdout.write(
            f"{len(result.added)} {verb}added, {len(result.changed)} {verb}changed, "
            f"{len(result.unchanged)} unchanged" + (" (dry run: nothing saved)" if dry_run else "")
        )
