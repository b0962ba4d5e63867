from accounts import services
from accounts.management.operator import TenantCredentialCommand
from accounts.models import AccessToken


class Command(TenantCredentialCommand):
    help = (
        "Create a read-only access token for a tenant's REST API. "
        "The secret is printed once and stored only as a keyed hash."
    )
    model = AccessToken
    create = staticmethod(services.access_token_create)
    noun = "access token"
    name_help = "What uses the token, e.g. finance-export."
    extra_lines = ("Use it as: Authorization: Bearer <secret>",)
