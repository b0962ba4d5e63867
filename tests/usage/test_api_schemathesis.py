"""Schemathesis against /api/v1/schema, in-process: every operation of the schema.

The read operations run with an access token, the gateway's (report calls, verify a key) with a
service token. Each operation gets a bounded number of generated requests (valid and invalid
parameters and bodies; Hypothesis' database is off and the seed fixed, so CI runs the same
cases every time); none may answer with a server error or with anything the schema does not
describe.
"""

import re

import hypothesis
import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from accounts import services

from .factories import make_calls, utc

INGESTION = r"^/api/v1/(ingest/|keys/verify)"


@pytest.fixture
def wsgi_app(db):
    """The project's WSGI app, kept from closing the test's connection after each request.

    The test runs inside a transaction; Django's test client keeps its connection open in the
    same way.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(wsgi_app):
    return schemathesis.openapi.from_wsgi("/api/v1/schema", wsgi_app)


@pytest.fixture
def bearer(tenant, api_key, llm, settings):
    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"access_token": "100000/min"}}
    make_calls(
        tenant,
        [
            {"api_key": api_key, "model": llm, "occurred_at": utc(2026, 11, 20, 9), "input_tokens": 5},
            {
                "api_key": api_key,
                "model": llm,
                "occurred_at": utc(2026, 11, 21, 9),
                "input_tokens": 3,
                "cached_input_tokens": 2,
            },
        ],
    )
    _token, secret = services.access_token_create(tenant=tenant, name="schemathesis")
    _token, service_secret = services.service_token_create(name="schemathesis-gateway")
    return {"read": f"Bearer {secret}", "gateway": f"Bearer {service_secret}"}


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@hypothesis.seed(20261202)
def test_api_conforms_to_its_schema(case, bearer):
    # All checks but positive_data_acceptance: a well-formed api_key or model that is not the
    # tenant's, or a range longer than 366 days, is a 400 by design, which that check calls a failure.
    gateway = re.match(INGESTION, case.path)
    headers = {"Authorization": bearer["gateway" if gateway else "read"]}
    case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])
