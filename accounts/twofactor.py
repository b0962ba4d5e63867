"""TOTP two-factor sign-in (RFC 6238 through pyotp) and one-time recovery codes.

The TOTP secret must stay readable to compute codes; recovery codes are shown once and stored
only as keyed hashes, like API keys.
"""

import secrets as pysecrets
import time
from io import BytesIO

import pyotp
import qrcode
import qrcode.image.svg
from django.db import transaction
from django.utils import timezone

from . import secrets
from .models import RecoveryCode, Tenant, TwoFactorDevice, User

ISSUER = "Usage Statistics"
RECOVERY_CODE_COUNT = 10
# A code from the step before or after is accepted too: phones' clocks drift.
VALID_WINDOW = 1


def device_for(user: User) -> TwoFactorDevice | None:
    return TwoFactorDevice.objects.filter(user=user).first()


def is_enrolled(user: User) -> bool:
    return TwoFactorDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()


def required_for(user: User) -> bool:
    """True when one of the user's tenants asks its members for two-factor sign-in."""
    return Tenant.objects.filter(memberships__user=user, require_two_factor=True).exists()


def enrolment_start(user: User) -> TwoFactorDevice:
    """The user's device, or a new unconfirmed one with a fresh secret.

    An unconfirmed secret is kept across page loads: the form's code must match the secret
    the person scanned.
    """
    device, _ = TwoFactorDevice.objects.get_or_create(user=user, defaults={"secret": pyotp.random_base32()})
    return device


def provisioning_uri(device: TwoFactorDevice) -> str:
    return pyotp.TOTP(device.secret).provisioning_uri(name=device.user.email, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The otpauth:// URI as an inline SVG: no image request, so the page's CSP holds."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=16, border=2)
    buffer = BytesIO()
    image.save(buffer)
    svg = buffer.getvalue().decode()
    # Drop the XML declaration: the markup goes inside the page.
    return svg[svg.index("<svg") :]


def _matching_step(device: TwoFactorDevice, code: str, now: float) -> int | None:
    totp = pyotp.TOTP(device.secret)
    current = totp.timecode(now)
    for offset in range(-VALID_WINDOW, VALID_WINDOW + 1):
        step = current + offset
        if pysecrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def totp_verify(device: TwoFactorDevice, code: str, now: float | None = None) -> bool:
    """True for a current code never used before; it is then spent (no replay)."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return False
    with transaction.atomic():
        device = TwoFactorDevice.objects.select_for_update().get(pk=device.pk)
        step = _matching_step(device, code, time.time() if now is None else now)
        if step is None or (device.last_used_step is not None and step <= device.last_used_step):
            return False
        device.last_used_step = step
        device.save(update_fields=["last_used_step"])
    return True


def enrolment_confirm(device: TwoFactorDevice, code: str) -> list[str] | None:
    """Confirm with a code from the app; the new recovery codes (shown once), or None."""
    if device.confirmed or not totp_verify(device, code):
        return None
    device.confirmed_at = timezone.now()
    device.save(update_fields=["confirmed_at"])
    return recovery_codes_renew(device.user)


def _normalize_recovery(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def recovery_codes_renew(user: User) -> list[str]:
    """Replace every recovery code of the user; the new ones are returned, never stored."""
    codes = [pysecrets.token_hex(5) for _ in range(RECOVERY_CODE_COUNT)]
    with transaction.atomic():
        RecoveryCode.objects.filter(user=user).delete()
        RecoveryCode.objects.bulk_create(
            RecoveryCode(user=user, code_hash=secrets.hash_secret(f"recovery:{user.pk}:{code}")) for code in codes
        )
    return [f"{code[:5]}-{code[5:]}" for code in codes]


def recovery_code_use(user: User, code: str) -> bool:
    """Spend one unused recovery code; False when it is unknown or used."""
    code = _normalize_recovery(code)
    if not code.isascii() or len(code) != 10:
        return False
    code_hash = secrets.hash_secret(f"recovery:{user.pk}:{code}")
    spent = RecoveryCode.objects.filter(user=user, code_hash=code_hash, used_at__isnull=True).update(
        used_at=timezone.now()
    )
    return spent == 1


def second_factor_check(user: User, code: str) -> bool:
    """A TOTP code of the user's confirmed device, or one of the recovery codes."""
    device = device_for(user)
    if device is None or not device.confirmed:
        return False
    return totp_verify(device, code) or recovery_code_use(user, code)


def disable(user: User) -> None:
    with transaction.atomic():
        TwoFactorDevice.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
