from django.core.management.base import CommandError

from accounts import services
from accounts.management.operator import OperatorCommand, tenant_by_slug
from accounts.models import ApiKey


class Command(OperatorCommand):
    help = "Create an API key for a tenant. The secret is printed once and stored only as a keyed hash."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, metavar="SLUG", help="The tenant the key belongs to.")
        parser.add_argument("name", help="What uses the key, e.g. billing-service.")

    def handle(self, *args, **options):
        tenant = tenant_by_slug(options["tenant"])
        name = options["name"].strip()
        # Reports show keys by name, so two keys of one tenant must not share one.
        if ApiKey.objects.filter(tenant=tenant, name__iexact=name).exists():
            raise CommandError(f"Tenant {tenant.slug} already has an API key named {name!r}.")
        key, secret = services.api_key_create(tenant=tenant, name=name)
        result = {"tenant": tenant.slug, "name": key.name, "public_id": key.public_id, "secret": secret}
        lines = [
            f"API key “{key.name}” for tenant {tenant.slug}, public id {key.public_id}.",
            f"Secret (shown once, store it now): {secret}",
        ]
        self.emit(options, result, lines)
