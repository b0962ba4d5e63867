from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts import services
from accounts.management.operator import OperatorCommand
from accounts.models import ServiceToken


class Command(OperatorCommand):
    help = (
        "Create a service token for the platform's gateway (it reports calls to /api/v1/ingest/calls and "
        "verifies keys at /api/v1/keys/verify). The secret is printed once and stored only as a keyed hash; "
        "revoke it in the admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="What uses the token, e.g. gateway-eu-1.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        # The admin lists tokens by name; two with one name could not be told apart to revoke one.
        if ServiceToken.objects.filter(name__iexact=name).exists():
            raise CommandError(f"A service token named {name!r} already exists.")
        token, secret = services.service_token_create(name=name)
        result = {"name": token.name, "public_id": token.public_id, "secret": secret}
        lines = [
            f"Service token “{token.name}”, public id {token.public_id}.",
            f"Secret (shown once, store it now): {secret}",
            "Use it as: Authorization: Bearer <secret>",
        ]
        self.emit(options, result, lines)
