import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from accounts.models import Tenant
from usage.rollups import recompute as rollups


class Command(BaseCommand):
    help = "Recompute hourly and daily rollups from the ledger (all tenants, or one; all days, or a range)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Tenant slug; default: every tenant.")
        parser.add_argument("--from", dest="first_day", type=dt.date.fromisoformat, help="First local day, YYYY-MM-DD.")
        parser.add_argument("--to", dest="last_day", type=dt.date.fromisoformat, help="Last local day, YYYY-MM-DD.")

    def handle(self, *args, tenant=None, first_day=None, last_day=None, **options):
        tenants = Tenant.objects.order_by("slug")
        if tenant:
            tenants = tenants.filter(slug=tenant)
            if not tenants.exists():
                raise CommandError(f"No tenant with slug '{tenant}'.")
        if first_day and last_day and last_day < first_day:
            raise CommandError("--to is before --from.")
        total = 0
        for each in tenants:
            total += self._rebuild(each, first_day, last_day, options["verbosity"])
        self.stdout.write(self.style.SUCCESS(f"Rebuilt {total} tenant-days of rollups."))

    def _rebuild(self, tenant, first_day, last_day, verbosity):
        bounds = rollups.ledger_day_range(tenant=tenant)
        span = (last_day or (bounds[1] if bounds else dt.datetime.now().astimezone().date())) - (
            first_day or (bounds[0] if bounds else dt.datetime.now().astimezone().date())
        )
        with tqdm(total=span.days + 1, desc=tenant.slug, unit="day", disable=verbosity == 0) as bar:
            return rollups.usage_rebuild(tenant=tenant, first_day=first_day, last_day=last_day, progress=bar.update)
