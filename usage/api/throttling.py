from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import AccessToken


class AccessTokenThrottle(SimpleRateThrottle):
    """The "access_token" rate, counted per token (per user for a browser session)."""

    scope = "access_token"

    def get_rate(self):
        # Read per request rather than at import, so a changed setting applies at once.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        if isinstance(request.auth, AccessToken):
            ident = f"token:{request.auth.public_id}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
