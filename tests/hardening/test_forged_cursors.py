"""Issue 12 item 3: every undecodable or out-of-range cursor of GET /api/v1/calls is a 400."""

import base64
from urllib.parse import quote

import pytest

from tests.usage.api_helpers import token_client


def _cursor(querystring):
    """A cursor as DRF encodes one: the values percent-encoded, then base64."""
    name, _, value = querystring.partition("=")
    return base64.b64encode(f"{name}={quote(value, safe='')}".encode("ascii")).decode("ascii")


@pytest.fixture(autouse=True)
def _long_urls(settings):
    """Cursors of 5,000-digit integers are longer than MAX_URL_LENGTH: let the cursor code see them."""
    settings.MAX_URL_LENGTH = 50_000


FORGED = [
    _cursor("p=0000-01-01 00:00:00+00:00"),  # year 0: parse_datetime raises
    _cursor("p=2026-02-30 10:00:00+00:00"),  # Feb 30
    _cursor("p=2026-13-01 10:00:00+00:00"),
    _cursor("p=2026-01-01 25:00:00+00:00"),
    _cursor("p=0001-01-01 00:00:00+05:00"),  # before year 1 in UTC
    _cursor("p=9999-12-31 23:59:59-05:00"),  # after year 9999 in UTC
    _cursor("p=1900-01-01 00:00:00+00:00"),  # before any call can be stored
    _cursor("p=2026-01-01 10:00:00"),  # naive
    _cursor("p=2026-01-01 10:00:00+99:00"),
    _cursor("p=yesterday"),
    _cursor("p=2026-01-01 10:00:00+00:00\x00"),
    _cursor("o=" + "9" * 5000),  # longer than int() converts
    _cursor("o=-1"),
    _cursor("r=" + "1" * 5000),
    _cursor("r=x"),
    "%%%not-base64%%%",
    "////",
    "é",
    base64.b64encode(b"\xff\xfe\x00").decode("ascii"),
    "A" * 10000,
]


@pytest.mark.parametrize("cursor", FORGED, ids=[f"forged{i}" for i in range(len(FORGED))])
def test_forged_cursor_is_400_problem(tenant, cursor):
    response = token_client(tenant).get("/api/v1/calls", {"cursor": cursor})
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    assert "cursor" in {error["field"] for error in response.json()["errors"]}


def test_a_genuine_position_cursor_still_works(tenant):
    response = token_client(tenant).get("/api/v1/calls", {"cursor": _cursor("p=2026-01-01 10:00:00+00:00")})
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_a_huge_but_convertible_offset_is_clamped_like_drf_does(tenant):
    """DRF caps a cursor's offset at ``offset_cutoff`` (1000) rather than refusing it: a genuine
    next link can exceed it when more than 1000 calls share one instant, so this stays a 200."""
    response = token_client(tenant).get("/api/v1/calls", {"cursor": _cursor("o=99999999999999999999999999")})
    assert response.status_code == 200
