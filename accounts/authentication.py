from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from .models import AccessToken
from .services import credential_touch


class AccessTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer uat_...``: a tenant's read-only API token.

    ``request.user`` is the token's creator (or an anonymous stand-in) and ``request.auth``
    the token; API views take the tenant from the token, never from a parameter.
    """

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[TokenUser, AccessToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        # The scheme is case-insensitive (RFC 9110 section 11.1), as for ingestion.
        if not header or header[0].lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Bearer <token>'.")
        token = AccessToken.find_by_secret(header[1])
        if token is None or token.status != "active":
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired access token.")
        credential_touch(token, at=timezone.now())
        return (TokenUser(token), token)

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class TokenUser:
    """The principal behind an access token: authenticated, scoped to one tenant, read-only."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, token: AccessToken) -> None:
        self.token = token
        self.pk = None
        self.id = None

    def __str__(self) -> str:
        return f"token:{self.token.public_id}"
