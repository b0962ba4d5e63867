from accounts import services
from accounts.management.operator import TenantCredentialCommand
from accounts.models import ApiKey


class Command(TenantCredentialCommand):
    help = "Create an API key for a tenant. The secret is printed once and stored only as a keyed hash."
    model = ApiKey
    create = staticmethod(services.api_key_create)
    noun = "API key"
    name_help = "What uses the key, e.g. billing-service."
