"""The month-end report page: nothing inline for the Content-Security-Policy to refuse, and the
paper footer's time in the tenant's zone. (What it looks like: tests/browser/test_report_and_phone_tables.py.)"""

import datetime as dt

from django.urls import reverse

from usage.ingestion.services import call_records_ingest


def _report(client, tenant):
    return client.get(reverse("reports:monthly", kwargs={"slug": tenant.slug})).content.decode()


def test_the_report_has_no_inline_style(owner_client, tenant):
    page = _report(owner_client, tenant)
    assert "<style" not in page and 'style="' not in page
    assert "css/report.css" in page


def test_the_printed_time_is_in_the_tenants_zone(outsider_client, other_tenant, other_api_key, llm):
    # A call of the other tenant this month, through ingestion, so the report has a section.
    item = {
        "request_id": "r-1",
        "api_key": other_api_key.public_id,
        "model": llm.name,
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        "input_tokens": 5,
        "output_tokens": 1,
    }
    assert call_records_ingest(items=[item]).accepted == 1
    before = dt.datetime.now(other_tenant.tz)
    page = _report(outsider_client, other_tenant)
    after = dt.datetime.now(other_tenant.tz)
    shown = {f"Printed {moment:%Y-%m-%d %H:%M} IST (Asia/Kolkata)" for moment in (before, after)}
    assert any(text in page for text in shown), page[page.index('class="note print-only"') :][:200]
