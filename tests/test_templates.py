"""No page shows template syntax: a comment or tag that Django did not parse reaches the user as text.

A ``{# .. #}`` comment may not span lines; one that does is printed as it is (the range picker's
once was, on every Usage Statistics page).
"""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from usage.rollups import recompute as rollups

from .tenant_pages import TENANT_PAGES
from .usage.factories import make_calls

PAGES = [*TENANT_PAGES, ("usage:dashboard", {"preset": "today"})]
LEAK = re.compile(r"\{#|#\}|\{%|%\}|\{\{|\}\}")


@pytest.fixture
def calls(tenant, api_key, llm):
    now = timezone.now()
    make_calls(
        tenant,
        [
            {"api_key": api_key, "model": llm, "occurred_at": now - dt.timedelta(days=days), "input_tokens": 100}
            for days in (0, 3, 9)
        ],
    )
    rollups.usage_rollup_dirty(tenant=tenant)


@pytest.mark.parametrize("with_calls", [False, True], ids=["empty", "with calls"])
@pytest.mark.parametrize(("name", "query"), PAGES, ids=[f"{n}{'?' + str(q) if q else ''}" for n, q in PAGES])
def test_no_template_syntax_reaches_the_page(request, owner_client, tenant, name, query, with_calls):
    if with_calls:
        request.getfixturevalue("calls")
    response = owner_client.get(reverse(name, kwargs={"slug": tenant.slug}), query)
    assert response.status_code == 200
    html = response.content.decode()
    # Outside <script> elements (JSON data and Chart.js code may hold braces).
    text = re.sub(r"<script\b.*?</script>", "", html, flags=re.S)
    assert not LEAK.findall(text), [text[max(0, m.start() - 80) : m.end() + 80] for m in LEAK.finditer(text)]
