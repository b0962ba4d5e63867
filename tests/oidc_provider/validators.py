import os

from oauth2_provider.oauth2_validators import OAuth2Validator


class EmailClaimsValidator(OAuth2Validator):
    """``email`` and ``email_verified``; the test names the addresses the provider has not verified."""

    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "email": "email", "email_verified": "email"}

    def get_additional_claims(self, request):
        unverified = set(filter(None, os.environ.get("OIDC_TEST_UNVERIFIED", "").split(",")))
        return {"email": request.user.email, "email_verified": request.user.email not in unverified}
