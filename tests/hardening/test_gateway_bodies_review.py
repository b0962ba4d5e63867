"""Review of the gateway body reader (issue 24): edges of Content-Encoding that lost calls."""

import gzip
import json
import zlib

import pytest

from tests.hardening.test_gateway_bodies import (  # noqa: F401 (fixtures)
    BODIES,
    LITELLM,
    OTLP,
    expected,
    gateway,
    key,
    litellm_payloads,
    otlp_protobuf,
    stored,
)
from usage.models import CallRecord


def _members(*parts):
    """One body of several gzip members (RFC 1952 2.2: a gzip file is a series of members)."""
    return b"".join(gzip.compress(part) for part in parts)


def test_every_gzip_member_of_an_ndjson_body_is_read(gateway, key):  # noqa: F811
    """``cat a.ndjson.gz b.ndjson.gz`` is one valid gzip stream: the second member's calls were
    dropped while the answer said 200."""
    lines = [json.dumps(p) for p in json.loads(litellm_payloads(key, 4, prefix="members"))]
    body = _members(("\n".join(lines[:2]) + "\n").encode(), "\n".join(lines[2:]).encode())
    assert gzip.decompress(body).decode().splitlines() == lines
    response = gateway.post(
        LITELLM, data=body, content_type="application/x-ndjson", headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 4
    assert stored("members") == expected("members", 4)


def test_every_gzip_member_of_an_otlp_protobuf_body_is_read(gateway, key):  # noqa: F811
    first, second = otlp_protobuf(key, 2, prefix="pb-a"), otlp_protobuf(key, 3, prefix="pb-b")
    body = _members(first, second)  # concatenated protobuf messages merge: 5 spans
    response = gateway.post(
        OTLP, data=body, content_type="application/x-protobuf", headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 200, response.content
    assert response["X-Usage-Accepted"] == "5"
    assert stored("pb-a") == expected("pb-a", 2)
    assert stored("pb-b") == expected("pb-b", 3)


def test_gzip_members_count_together_against_the_limit(gateway, key, settings):  # noqa: F811
    settings.INGEST_MAX_BODY_BYTES = 20000
    path, _media, make = BODIES["litellm"]
    lines = [json.dumps(p) for p in json.loads(make(key, 150, prefix="big"))]
    half = len(lines) // 2
    parts = ["\n".join(lines[:half]).encode() + b"\n", "\n".join(lines[half:]).encode()]
    assert all(len(part) < 20000 for part in parts) and sum(map(len, parts)) > 20000
    response = gateway.post(
        path, data=_members(*parts), content_type="application/x-ndjson", headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 413
    assert CallRecord.objects.count() == 0


def test_bytes_after_a_deflate_stream_are_a_400_not_ignored(gateway, key):  # noqa: F811
    """Data after the end of a zlib stream is not part of the body the client meant: refused,
    not silently cut off."""
    lines = [json.dumps(p) for p in json.loads(litellm_payloads(key, 2, prefix="tail"))]
    body = zlib.compress(lines[0].encode() + b"\n") + lines[1].encode()
    response = gateway.post(
        LITELLM, data=body, content_type="application/x-ndjson", headers={"Content-Encoding": "deflate"}
    )
    assert response.status_code == 400, response.content
    assert CallRecord.objects.count() == 0


@pytest.mark.parametrize(
    ("header", "times"),
    [("gzip, identity", 1), ("identity, gzip", 1), ("x-gzip", 1), ("GZIP", 1), ("gzip, gzip", 2), ("deflate,gzip", 0)],
)
def test_a_content_encoding_list_is_decoded_in_order(gateway, key, header, times):  # noqa: F811
    """RFC 9110 8.4: the codings are listed in the order applied; identity changes nothing and
    x-gzip is gzip. Those bodies were refused as 415 although each coding is supported."""
    path, media, make = BODIES["litellm"]
    body = make(key, 3, prefix="listed")
    if times == 0:  # deflate first, then gzip
        body = gzip.compress(zlib.compress(body))
    for _ in range(times):
        body = gzip.compress(body)
    response = gateway.post(path, data=body, content_type=media, headers={"Content-Encoding": header})
    assert response.status_code == 200, response.content
    assert stored("listed") == expected("listed", 3)


def test_an_unknown_coding_in_a_list_is_still_415(gateway, key):  # noqa: F811
    path, media, make = BODIES["litellm"]
    body = gzip.compress(make(key, 3, prefix="br"))
    response = gateway.post(path, data=body, content_type=media, headers={"Content-Encoding": "br, gzip"})
    assert response.status_code == 415
    assert CallRecord.objects.count() == 0
