"""Prepare the provider's database: its users and the product registered as a client.

Run as ``python -m tests.oidc_provider.setup`` with DJANGO_SETTINGS_MODULE=tests.oidc_provider.settings
and OIDC_TEST_SETUP (JSON: client_id, client_secret, redirect_uris, users [{username, email, password}]).
"""

import json
import os

import django


def main() -> None:
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0)
    setup = json.loads(os.environ["OIDC_TEST_SETUP"])
    User = get_user_model()
    for person in setup["users"]:
        User.objects.create_user(person["username"], person["email"], person["password"])
    Application.objects.create(
        name="Usage Statistics",
        client_id=setup["client_id"],
        client_secret=setup["client_secret"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(setup["redirect_uris"]),
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )


if __name__ == "__main__":
    main()
