import datetime as dt
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from .models import AccessToken, ApiKey, Credential, Membership, ServiceToken, Tenant, User

# A credential model: a key, an access token or a service token.
C = TypeVar("C", bound=Credential)


def normalize_email(email: str | None) -> str:
    """Emails are stored lower-case, so one person cannot end up with two accounts by case."""
    email = User.objects.normalize_email((email or "").strip()).lower()
    validate_email(email)
    return email


def user_get_or_create(*, email: str, password: str | None = None) -> tuple[User, bool]:
    """``(user, created)`` for this email; a new user without a password cannot log in yet."""
    email = normalize_email(email)
    user = User.objects.filter(email__iexact=email).first()
    if user is not None:
        return user, False
    return User.objects.create_user(email, password), True


@transaction.atomic
def tenant_create(
    *,
    slug: str,
    name: str,
    timezone_name: str = "UTC",
    owner_email: str | None = None,
    owner_password: str | None = None,
) -> Tenant:
    """Create a tenant and, optionally, its owner (a new or existing user)."""
    tenant = Tenant(slug=slugify(slug), name=(name or "").strip(), timezone=timezone_name)
    tenant.full_clean()
    tenant.save()
    if owner_email:
        user, _created = user_get_or_create(email=owner_email, password=owner_password)
        membership_set(tenant=tenant, user=user, role=Membership.Role.OWNER)
    return tenant


def membership_set(*, tenant: Tenant, user: User, role: str) -> tuple[Membership, str | None]:
    """Make ``user`` a member of ``tenant`` with ``role``; returns ``(membership, previous_role)``.

    ``previous_role`` is None when the user was not a member before.
    """
    membership = Membership.objects.filter(tenant=tenant, user=user).first()
    previous_role = membership.role if membership else None
    membership = membership or Membership(tenant=tenant, user=user)
    membership.role = role
    membership.full_clean()
    membership.save()
    return membership, previous_role


def _credential_create(model: type[C], *, name: str, **fields: Any) -> tuple[C, str]:
    credential = model(name=(name or "").strip(), **fields)
    secret = credential.set_new_secret()
    credential.full_clean()
    credential.save()
    return credential, secret


def api_key_create(
    *, tenant: Tenant, name: str, created_by: User | None = None, expires_at: dt.datetime | None = None
) -> tuple[ApiKey, str]:
    """A new key and its secret; the secret is returned once and never stored."""
    return _credential_create(ApiKey, name=name, tenant=tenant, created_by=created_by, expires_at=expires_at)


def access_token_create(
    *, tenant: Tenant, name: str, created_by: User | None = None, expires_at: dt.datetime | None = None
) -> tuple[AccessToken, str]:
    return _credential_create(AccessToken, name=name, tenant=tenant, created_by=created_by, expires_at=expires_at)


def service_token_create(*, name: str, expires_at: dt.datetime | None = None) -> tuple[ServiceToken, str]:
    return _credential_create(ServiceToken, name=name, expires_at=expires_at)


def credential_revoke(credential: C) -> C:
    """Revoke once; revoking again keeps the first revocation time."""
    if credential.revoked_at is None:
        credential.revoked_at = timezone.now()
        credential.save(update_fields=["revoked_at"])
    return credential


def validation_message(error: Exception) -> str:
    """One readable line for a ValidationError, naming the fields: for commands and logs."""
    if not isinstance(error, ValidationError) or not hasattr(error, "error_dict"):
        return " ".join(getattr(error, "messages", [str(error)]))
    parts = []
    for field, messages in error.message_dict.items():
        prefix = "" if field == "__all__" else f"{field}: "
        parts.append(prefix + " ".join(messages))
    return "; ".join(parts)


# ``last_used_at`` is shown to the minute: a busy key must not cost a write per call.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def credential_touch(credential: ApiKey | AccessToken | ServiceToken, *, at: dt.datetime) -> None:
    """Record that a key or token was used at ``at``; a no-op while its stored time is < 1 min older."""
    if credential.last_used_at is not None and at - credential.last_used_at < LAST_USED_RESOLUTION:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=at)
    type(credential).objects.filter(stale, pk=credential.pk).update(last_used_at=at)
    credential.last_used_at = at
