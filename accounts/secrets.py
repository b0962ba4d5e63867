"""Secrets that are shown once and stored only as keyed hashes.

A secret reads ``<prefix>_<public_id>_<random>``: the public id lets a holder (or the
gateway) name the key without revealing it, and lets verification find the row with
one indexed lookup before a constant-time comparison of the HMAC.
"""

import base64
import hashlib
import hmac
import secrets
import string

from cryptography.fernet import Fernet
from django.conf import settings

PUBLIC_ID_ALPHABET = string.ascii_lowercase + string.digits
PUBLIC_ID_LENGTH = 12
_PUBLIC_ID_CHARACTERS = frozenset(PUBLIC_ID_ALPHABET)


def new_public_id() -> str:
    return "".join(secrets.choice(PUBLIC_ID_ALPHABET) for _ in range(PUBLIC_ID_LENGTH))


def hash_secret(secret: str) -> str:
    key = settings.SECRET_HASH_KEY.encode()
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()


def new_secret(prefix: str, public_id: str) -> tuple[str, str]:
    """Return ``(secret, keyed_hash)`` for a new credential with this public id."""
    secret = f"{prefix}_{public_id}_{secrets.token_urlsafe(32)}"
    return secret, hash_secret(secret)


def split_secret(secret: object, prefix: str) -> str | None:
    """The public id inside ``secret``, or None when it is not shaped like ours."""
    # Ours are printable ASCII: a NUL (PostgreSQL refuses it in a query) or a lone surrogate
    # (unencodable, so no hash) is simply not one of our secrets.
    if not isinstance(secret, str) or len(secret) > 200 or not (secret.isascii() and secret.isprintable()):
        return None
    parts = secret.split("_", 2)
    if len(parts) != 3 or parts[0] != prefix or len(parts[1]) != PUBLIC_ID_LENGTH:
        return None
    if not set(parts[1]) <= _PUBLIC_ID_CHARACTERS:
        return None
    return parts[1]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def _sealing_key() -> Fernet:
    # Derived from SECRET_HASH_KEY for this one purpose; rotating that key unseals nothing more.
    derived = hmac.new(settings.SECRET_HASH_KEY.encode(), b"accounts.two-factor-secret", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(value: str) -> str:
    """Encrypt a secret that must stay readable (a TOTP seed): a copy of the database alone
    does not give it away."""
    return _sealing_key().encrypt(value.encode()).decode()


def unseal(token: str) -> str:
    return _sealing_key().decrypt(token.encode()).decode()
