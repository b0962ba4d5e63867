from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from .models import AccessToken, ApiKey, Membership, ServiceToken, Tenant, User


@transaction.atomic
def tenant_create(*, slug, name, timezone_name="UTC", owner_email=None, owner_password=None):
    """Create a tenant and, optionally, its owner (a new or existing user)."""
    tenant = Tenant(slug=slugify(slug), name=name, timezone=timezone_name)
    tenant.full_clean()
    tenant.save()
    if owner_email:
        user = User.objects.filter(email=owner_email.lower()).first()
        if user is None:
            user = User.objects.create_user(owner_email, owner_password)
        Membership.objects.create(user=user, tenant=tenant, role=Membership.Role.OWNER)
    return tenant


def _credential_create(model, *, name, **fields):
    credential = model(name=name.strip(), **fields)
    secret = credential.set_new_secret()
    credential.full_clean()
    credential.save()
    return credential, secret


def api_key_create(*, tenant, name, created_by=None, expires_at=None):
    """A new key and its secret; the secret is returned once and never stored."""
    return _credential_create(ApiKey, name=name, tenant=tenant, created_by=created_by, expires_at=expires_at)


def access_token_create(*, tenant, name, created_by=None, expires_at=None):
    return _credential_create(AccessToken, name=name, tenant=tenant, created_by=created_by, expires_at=expires_at)


def service_token_create(*, name, expires_at=None):
    return _credential_create(ServiceToken, name=name, expires_at=expires_at)


def credential_revoke(credential):
    """Revoke once; revoking again keeps the first revocation time."""
    if credential.revoked_at is None:
        credential.revoked_at = timezone.now()
        credential.save(update_fields=["revoked_at"])
    return credential
