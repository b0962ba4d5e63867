"""Base of the operator commands: human lines by default, one JSON object with ``--json``."""

import json
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import AccessToken, ApiKey, Tenant
from accounts.services import normalize_email, validation_message


class OperatorCommand(BaseCommand):
    """Errors become a ``CommandError`` (exit status 1, message on stderr, nothing on stdout)."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print the result as one JSON object on stdout."
        )
        return parser

    def execute(self, *args: Any, **options: Any) -> str | None:
        try:
            return super().execute(*args, **options)
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from exc

    def emit(self, options: dict[str, Any], result: dict[str, Any], lines: Iterable[str]) -> None:
        """Write ``result`` as JSON, or ``lines`` for a person reading a terminal."""
        if options["as_json"]:
            self.stdout.write(json.dumps(result, sort_keys=True))
        else:
            for line in lines:
                self.stdout.write(line)


def tenant_by_slug(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"No tenant with slug {slug!r} (see the admin, or create it with create_tenant).")
    return tenant


def checked_email(email: str) -> str:
    try:
        return normalize_email(email)
    except ValidationError as exc:
        raise CommandError(f"{email!r} is not an email address.") from exc


def checked_password(password: str | None, email: str) -> tuple[str, bool]:
    """The operator's password after Django's validators, or a generated one when none is given.

    Returns ``(password, generated)``.
    """
    if not password:
        return secrets.token_urlsafe(12), True
    try:
        validate_password(password)
    except ValidationError as exc:
        raise CommandError(f"Password for {email} refused: {' '.join(exc.messages)}") from exc
    return password, False


class TenantCredentialCommand(OperatorCommand):
    """``--tenant SLUG NAME``: create a tenant's key or token and print its secret once.

    Subclasses name the model, the creating service, a noun and the help of the name argument.
    """

    model: type[ApiKey] | type[AccessToken]
    create: Callable[..., tuple[ApiKey | AccessToken, str]]
    noun = ""
    name_help = ""
    extra_lines: tuple[str, ...] = ()

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, metavar="SLUG", help=f"The tenant the {self.noun} belongs to.")
        parser.add_argument("name", help=self.name_help)

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = tenant_by_slug(options["tenant"])
        name = options["name"].strip()
        # Pages and reports list these by name, so one tenant's names stay distinct.
        if self.model.objects.filter(tenant=tenant, name__iexact=name).exists():
            raise CommandError(f"Tenant {tenant.slug} already has an {self.noun} named {name!r}.")
        credential, secret = type(self).create(tenant=tenant, name=name)
        result = {"tenant": tenant.slug, "name": credential.name, "public_id": credential.public_id, "secret": secret}
        lines = [
            f"{self.noun[0].upper()}{self.noun[1:]} “{credential.name}” for tenant {tenant.slug}, "
            f"public id {credential.public_id}.",
            f"Secret (shown once, store it now): {secret}",
            *self.extra_lines,
        ]
        self.emit(options, result, lines)
