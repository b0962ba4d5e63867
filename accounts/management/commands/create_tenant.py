from typing import Any

from django.core.management.base import CommandParser
from django.db import transaction

from accounts import services
from accounts.management.operator import OperatorCommand, checked_email, checked_password
from accounts.models import Tenant, User


class Command(OperatorCommand):
    help = "Create a tenant and, optionally, its owner (a new user gets a password, printed once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="URL name of the tenant, e.g. acme.")
        parser.add_argument("--name", required=True, help="Display name, e.g. 'Acme Corp'.")
        parser.add_argument("--timezone", default="UTC", help="IANA time zone of the tenant's days (default UTC).")
        parser.add_argument("--owner", metavar="EMAIL", help="Owner's email; the user is created if new.")
        parser.add_argument("--password", help="Password of a new owner (default: generated and printed).")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        owner = checked_email(options["owner"]) if options["owner"] else None
        password = generated = None
        if owner and not User.objects.filter(email__iexact=owner).exists():
            password, is_generated = checked_password(options["password"], owner)
            generated = password if is_generated else None
        elif owner and options["password"]:
            self.stderr.write(f"{owner} already exists: --password ignored, their password is unchanged.")
        tenant = services.tenant_create(
            slug=options["slug"],
            name=options["name"],
            timezone_name=options["timezone"],
            owner_email=owner,
            owner_password=password,
        )
        self.emit(options, _result(tenant, owner, generated), _lines(tenant, owner, generated))


def _result(tenant: Tenant, owner: str | None, generated_password: str | None) -> dict[str, Any]:
    result = {"id": tenant.pk, "slug": tenant.slug, "name": tenant.name, "timezone": tenant.timezone}
    if owner:
        result["owner"] = owner
    if generated_password:
        result["password"] = generated_password
    return result


def _lines(tenant: Tenant, owner: str | None, generated_password: str | None) -> list[str]:
    lines = [f"Created tenant “{tenant.name}” (slug {tenant.slug}, time zone {tenant.timezone})."]
    if owner:
        lines.append(f"Owner: {owner}")
    if generated_password:
        lines.append(f"Password of {owner} (shown once, store it now): {generated_password}")
    return lines
