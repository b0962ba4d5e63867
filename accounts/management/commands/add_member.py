from typing import Any

from django.core.management.base import CommandParser
from django.db import transaction

from accounts import services
from accounts.management.operator import OperatorCommand, checked_email, checked_password, tenant_by_slug
from accounts.models import Membership, User


class Command(OperatorCommand):
    help = "Add a user to a tenant (creating the user if new), or change a member's role."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, metavar="SLUG", help="The tenant to join.")
        parser.add_argument("email", help="The member's email; the user is created if new.")
        parser.add_argument("--role", choices=Membership.Role.values, default=Membership.Role.VIEWER)
        parser.add_argument("--password", help="Password of a new user (default: generated and printed).")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        tenant = tenant_by_slug(options["tenant"])
        email = checked_email(options["email"])
        generated = None
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            password, is_generated = checked_password(options["password"], email)
            user, _ = services.user_get_or_create(email=email, password=password)
            generated = password if is_generated else None
        elif options["password"]:
            self.stderr.write(f"{email} already exists: --password ignored, their password is unchanged.")
        membership, previous = services.membership_set(tenant=tenant, user=user, role=options["role"])
        result = {"tenant": tenant.slug, "email": user.email, "role": membership.role, "previous_role": previous}
        if generated:
            result["password"] = generated
        self.emit(options, result, _lines(membership, previous, generated))


def _lines(membership: Membership, previous_role: str | None, generated_password: str | None) -> list[str]:
    who, where = membership.user.email, membership.tenant.slug
    if previous_role is None:
        lines = [f"{who} is now {membership.role} of {where}."]
    elif previous_role == membership.role:
        lines = [f"{who} already was {membership.role} of {where}: nothing changed."]
    else:
        lines = [f"{who}: role in {where} changed from {previous_role} to {membership.role}."]
    if generated_password:
        lines.append(f"Password of {who} (shown once, store it now): {generated_password}")
    return lines
