import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from usage.demo import seed as demo


class Command(BaseCommand):
    help = (
        "Create the demo tenants, keys, models, prices and days of calls (real Azure traces replayed "
        "plus a synthetic weekly pattern). Idempotent: a rerun the same UTC day adds nothing."
    )

    def add_arguments(self, parser):
        defaults = demo.DemoConfig()
        parser.add_argument("--days", type=int, default=defaults.days, help="Days of calls, ending today 00:00 UTC.")
        parser.add_argument(
            "--trace-sample", type=int, default=defaults.trace_sample, help="Trace calls replayed per busy hour."
        )
        parser.add_argument(
            "--synthetic-peak", type=int, default=defaults.synthetic_peak, help="Synthetic calls in the busiest hour."
        )
        parser.add_argument("--trace-dir", type=Path, default=demo.default_trace_dir(), help="Folder of the traces.")
        parser.add_argument("--password", default=demo.DEMO_PASSWORD, help="Password of the demo logins.")
        parser.add_argument("--allow-production", action="store_true", help="Seed even when DJANGO_ENV=production.")

    def handle(self, *args, **options):
        if settings.PRODUCTION and not options["allow_production"]:
            raise CommandError("Refusing to create demo logins with a known password in production.")
        if options["days"] < 1 or options["trace_sample"] < 0 or options["synthetic_peak"] < 0:
            raise CommandError("--days must be at least 1; --trace-sample and --synthetic-peak not negative.")
        config = demo.DemoConfig(
            days=options["days"],
            trace_sample=options["trace_sample"],
            synthetic_peak=options["synthetic_peak"],
            trace_dir=options["trace_dir"],
            password=options["password"],
        )
        now, started = timezone.now(), time.monotonic()
        with tqdm(total=demo.day_count(config, now), unit="day", desc="Seeding", file=sys.stderr) as bar:
            result = demo.seed_demo(config=config, now=now, on_day=bar.update)
        self._report(result, config, time.monotonic() - started)

    def _report(self, result, config, seconds):
        if result.missing_traces:
            self.stderr.write(
                f"Trace files not found in {config.trace_dir}: {', '.join(result.missing_traces)}. "
                "Seeded the synthetic pattern only."
            )
        start, end = (instant.strftime("%Y-%m-%d %H:%M UTC") for instant in result.window)
        self.stdout.write(f"Calls from {start} to {end}, seeded in {seconds:.1f} s:")
        for slug, added in result.added.items():
            self.stdout.write(f"  {slug}: {added} added, {result.totals[slug]} in the ledger")
        if result.traces:
            self.stdout.write(
                "Replays the Azure LLM inference trace 2023 (Microsoft AzurePublicDataset, CC-BY 4.0; "
                "Patel et al., Splitwise, ISCA 2024)."
            )
        self.stdout.write(
            self.style.SUCCESS("Demo ready: http://127.0.0.1:8000  (admin: http://127.0.0.1:8000/admin/)")
        )
        self.stdout.write(f"  Log in as {demo.DEMO_EMAIL} / {config.password}  (owner of both tenants, superuser)")
        self.stdout.write(f"  or as {demo.VIEWER_EMAIL} / {config.password}  (viewer of Demo Corp)")
