"""Review of issue 24's dropped-item log lines: what a client sends (a payload id, a status) is
written into the operator's log, so it may not start a line of its own there."""

import json
import logging

from django.test import Client

from accounts import services as account_services
from tests.usage.test_otlp_dialects import api_key, fresh_log_state  # noqa: F401 (fixtures)


def test_a_client_cannot_forge_log_lines_through_an_id_or_a_status(
    db,
    caplog,
    fresh_log_state,  # noqa: F811
    api_key,  # noqa: F811
):
    secret = account_services.service_token_create(name="proxy")[1]
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    forged = "\nCRITICAL django.security: forged line"
    payloads = [{"id": "a" + forged, "status": "failure" + forged}, {"id": "b" + forged, "status": "success"}]
    with caplog.at_level(logging.WARNING, logger="usage.gateway.dropped"):
        response = client.post("/api/v1/litellm/logs", data=json.dumps(payloads), content_type="application/json")
    assert response.status_code == 200
    lines = [record.getMessage() for record in caplog.records if record.name == "usage.gateway.dropped"]
    # A failure is a call (issue 27): both payloads are rejected, each reason logged with its escaped id.
    assert any("(a\\nCRITICAL django.security: forged line)" in line for line in lines) and len(lines) > 1
    for line in lines:
        assert "\n" not in line and "\r" not in line
        assert "forged line" in line  # still shown, escaped
