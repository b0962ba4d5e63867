import datetime as dt
import zoneinfo
from typing import Any, Self

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone as djtz

from . import secrets


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: Any) -> "User":
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> "User":
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> "User":
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    """A person who logs in with an email address."""

    username = None  # type: ignore[assignment]  # the email address is the login
    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = []

    objects = UserManager()  # type: ignore[assignment,misc]  # creates users by email

    def __str__(self) -> str:
        return self.email


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"'{value}' is not an IANA time zone (for example Europe/Berlin).")


class Tenant(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="IANA time zone; the tenant's days and hours are local to it.",
    )
    created_at = models.DateTimeField(default=djtz.now)
    # Set by the tenant's owner (README "Accounts and sign-in").
    require_two_factor = models.BooleanField(
        default=False, help_text="Members must set up two-factor sign-in before they see any page of this tenant."
    )
    sso_email_domain = models.CharField(
        max_length=253,
        blank=True,
        default="",
        help_text="A new single sign-on user whose verified e-mail is at this domain joins this tenant.",
    )
    sso_default_role = models.CharField(
        max_length=16,
        choices=[("admin", "Admin"), ("viewer", "Viewer")],
        default="viewer",
        help_text="The role such a new member gets.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            # One tenant per domain: an SSO user's tenant must never be ambiguous.
            models.UniqueConstraint(
                fields=["sso_email_domain"],
                condition=~models.Q(sso_email_domain=""),
                name="tenant_unique_sso_email_domain",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=djtz.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")]
        ordering = ["tenant__name"]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"

    @property
    def can_manage(self) -> bool:
        """Owners and admins change keys and tokens; viewers only look."""
        return self.role in (self.Role.OWNER, self.Role.ADMIN)


class CredentialQuerySet(models.QuerySet[Any]):
    def active(self, at: dt.datetime | None = None) -> "CredentialQuerySet":
        at = at or djtz.now()
        return self.filter(revoked_at__isnull=True).exclude(expires_at__lte=at)


class Credential(models.Model):
    """A secret shown once and stored as a keyed hash, found by its public id."""

    PREFIX = ""

    name = models.CharField(max_length=200)
    public_id = models.CharField(max_length=32, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=djtz.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = CredentialQuerySet.as_manager()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    def set_new_secret(self) -> str:
        """Give this (unsaved) credential a fresh secret and return it; it is never stored."""
        self.public_id = secrets.new_public_id()
        secret, self.secret_hash = secrets.new_secret(self.PREFIX, self.public_id)
        return secret

    def status_at(self, at: dt.datetime | None = None) -> str:
        at = at or djtz.now()
        if self.revoked_at is not None and self.revoked_at <= at:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= at:
            return "expired"
        return "active"

    @property
    def status(self) -> str:
        return self.status_at()

    @classmethod
    def find_by_secret(cls, secret: str) -> Self | None:
        """The credential this secret belongs to (whatever its status), or None."""
        public_id = secrets.split_secret(secret, cls.PREFIX)
        if public_id is None:
            return None
        credential = cls.objects.filter(public_id=public_id).first()
        if credential is None or not secrets.secret_matches(secret, credential.secret_hash):
            return None
        return credential


class ApiKey(Credential):
    """A tenant's key for calling models. Never deleted once used: reports keep its name."""

    PREFIX = "sk"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "API key"
        ordering = ["tenant", "name"]


class ServiceToken(Credential):
    """Platform-level secret of the gateway: reports calls, verifies keys."""

    PREFIX = "svc"

    class Meta:
        ordering = ["name"]


class AccessToken(Credential):
    """A tenant's read-only token for the REST API."""

    PREFIX = "uat"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="access_tokens")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["tenant", "name"]


class TwoFactorDevice(models.Model):
    """A user's TOTP authenticator (RFC 6238). Unconfirmed until a code from it was typed once."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="two_factor")
    # The shared secret has to be readable to compute codes, so it cannot be hashed like a
    # password: it is stored encrypted with a key derived from SECRET_HASH_KEY.
    secret_sealed = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=djtz.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The time step of the last accepted code: a code is accepted once, never replayed.
    last_used_step = models.BigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"two-factor of {self.user}"

    @property
    def secret(self) -> str:
        """The base32 TOTP seed."""
        return secrets.unseal(self.secret_sealed)

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_sealed = secrets.seal(value)

    @property
    def confirmed(self) -> bool:
        return self.confirmed_at is not None


class RecoveryCode(models.Model):
    """A one-time code for a user who lost the authenticator; stored only as a keyed hash."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # Serves the lookup of a typed code: (user, hash) of an unused one.
        indexes = [models.Index(fields=["user", "code_hash"], name="recovery_user_hash")]

    def __str__(self) -> str:
        return f"recovery code of {self.user}"
