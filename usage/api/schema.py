"""OpenAPI pieces drf-spectacular cannot infer: the bearer scheme and the error responses."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse

from .serializers import ProblemSerializer

PROBLEM = "application/problem+json"


class AccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.AccessTokenAuthentication"
    name = "accessToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A tenant's access token (uat_...), from the Access Tokens page or "
            "`manage.py create_access_token`.",
        }


def problem(description):
    return OpenApiResponse(ProblemSerializer, description=description)


ERRORS = {
    (400, PROBLEM): problem("A parameter is invalid: an unknown or foreign api_key or model, a bad date range."),
    (401, PROBLEM): problem("No, an invalid, a revoked or an expired access token."),
    (404, PROBLEM): problem("The tenant parameter names a tenant you cannot read."),
    (429, PROBLEM): problem("Too many requests for this token; retry after Retry-After seconds."),
}


def responses(ok):
    """The success response plus the problem responses every endpoint can give."""
    return {200: ok, **ERRORS}
