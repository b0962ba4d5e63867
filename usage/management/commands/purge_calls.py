from django.core.management.base import BaseCommand, CommandError

from usage import tasks
from usage.ledger import partitions, retention


class Command(BaseCommand):
    help = (
        "Purge call-level detail of whole UTC months older than MONTHS before the current one: PostgreSQL drops "
        "the months' ledger partitions, SQLite deletes in batches. Rollups keep every day's totals, so the page, "
        "the API, the CSV and the reports are unchanged; the ledger API and the call list then start at the new "
        "horizon. Irreversible; try --dry-run first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", dest="months", type=int, required=True, metavar="MONTHS")
        parser.add_argument("--dry-run", action="store_true", help="Say what would be purged; change nothing.")
        parser.add_argument(
            "--claims-now",
            action="store_true",
            help="Delete the purged months' request-id claims before returning (default: the worker does it).",
        )

    def handle(self, *args, months, dry_run, claims_now, **options):
        if months < 1:
            raise CommandError("--older-than must be at least 1 (month).")
        before = retention.purge_before(older_than_months=months)
        verb = "Would purge" if dry_run else "Purging"
        how = "dropping partitions" if partitions.partitioned() else "deleting in batches"
        self.stdout.write(f"{verb} calls before {before:%Y-%m-%d} (UTC), {how}.")

        def progress(done):
            self.stdout.write(f"  {done:,} calls deleted")

        summary = retention.calls_purge(
            older_than_months=months,
            dry_run=dry_run,
            progress=progress if options["verbosity"] else None,
            claims_later=None if claims_now else tasks.enqueue_claims_purge,
        )
        for name in summary.partitions:
            self.stdout.write(f"  partition {name}")
        calls = f"{'about ' if summary.estimated else ''}{summary.calls:,} calls"
        if dry_run:
            self.stdout.write(f"Dry run: {calls} would be purged; nothing changed.")
            return
        claims = (
            "their request-id claims are being deleted by the worker"
            if summary.claims is None
            else f"{summary.claims:,} request-id claims deleted"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Purged {calls} before {before:%Y-%m-%d} in {summary.seconds:.2f} s "
                f"({len(summary.partitions)} partitions dropped, {claims}). "
                f"Call-level detail is available from {before:%Y-%m-%d} (UTC); rollups keep every day."
            )
        )
