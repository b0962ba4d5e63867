"""The client address that login throttling (django-axes) counts failures against."""

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """``REMOTE_ADDR``, or with ``LOGIN_CLIENT_IP_HEADER`` set only that header.

    Behind the proxy every request comes from the proxy's address, so the proxy must put the
    client's address in one header it always overwrites (e.g. ``X-Real-IP``). No other header is
    read: a client could write ``X-Forwarded-For`` itself and pick a fresh address per attempt.
    """
    header = settings.LOGIN_CLIENT_IP_HEADER
    if header:
        meta_name = "HTTP_" + header.upper().replace("-", "_")
        value = request.META.get(meta_name, "").strip()
        if value:
            return value
    # Without the header the request did not come through the proxy: its own address counts.
    return request.META.get("REMOTE_ADDR")


def not_a_guess(request: HttpRequest, credentials: Mapping[str, Any] | None = None) -> bool:
    """True for a single sign-on callback, which django-axes then neither counts nor refuses.

    Its credentials are a nonce and a PKCE verifier bound to this session, not something to guess;
    counted, its failures would pile up under "no username" and lock single sign-on for everyone
    behind one address. The signed-in person's own lockout is checked by the callback.
    """
    return credentials is not None and "nonce" in credentials and "username" not in credentials
