from django.core.management.base import CommandError

from accounts import services
from accounts.management.operator import OperatorCommand, tenant_by_slug
from accounts.models import AccessToken


class Command(OperatorCommand):
    help = (
        "Create a read-only access token for a tenant's REST API. "
        "The secret is printed once and stored only as a keyed hash."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, metavar="SLUG", help="The tenant whose usage the token reads.")
        parser.add_argument("name", help="What uses the token, e.g. finance-export.")

    def handle(self, *args, **options):
        tenant = tenant_by_slug(options["tenant"])
        name = options["name"].strip()
        # The Access Tokens page lists tokens by name, so one tenant's names stay distinct.
        if AccessToken.objects.filter(tenant=tenant, name__iexact=name).exists():
            raise CommandError(f"Tenant {tenant.slug} already has an access token named {name!r}.")
        token, secret = services.access_token_create(tenant=tenant, name=name)
        result = {"tenant": tenant.slug, "name": token.name, "public_id": token.public_id, "secret": secret}
        lines = [
            f"Access token “{token.name}” for tenant {tenant.slug}, public id {token.public_id}.",
            f"Secret (shown once, store it now): {secret}",
            "Use it as: Authorization: Bearer <secret>",
        ]
        self.emit(options, result, lines)
