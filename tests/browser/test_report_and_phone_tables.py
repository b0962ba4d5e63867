"""What a person sees of the expense report (under the product's own Content-Security-Policy,
on screen and on paper) and of the tables whose last columns matter, on a 390 px wide phone."""

import pytest
from django.urls import reverse

from accounts.models import Membership, User
from usage.models import ModelPrice

from .chromium import wait_until
from .test_csp_browser import WATCH
from .test_dashboard_browser import browser, cast, login  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def _url(live_server, name):
    return live_server.url + reverse(name, kwargs={"slug": "acme"})


def _weight(page, selector):
    return int(page.evaluate(f"getComputedStyle(document.querySelector({selector!r})).fontWeight"))


def _background(page, selector):
    return page.evaluate(f"getComputedStyle(document.querySelector({selector!r})).backgroundColor")


def test_the_report_is_styled_under_the_policy(browser, live_server, cast):  # noqa: F811
    page = login(browser, live_server, cast, viewport={"width": 1440, "height": 1000})
    page.add_init_script(WATCH)
    messages = []
    page.on("console", lambda message: messages.append(message.text))
    page.goto(_url(live_server, "reports:monthly"))
    assert page.locator("tr.subtotal").count() >= 1
    # Nothing refused: no inline <style> for the policy to block.
    assert page.evaluate("window.__csp") == [] and not [m for m in messages if "Content Security Policy" in m]
    data, subtotal, total = ".report-table tbody tr:not(.subtotal) td", "tr.subtotal td", "tfoot td"
    assert _weight(page, data) == 400 and _weight(page, subtotal) == 600 and _weight(page, total) == 700
    assert len({_background(page, data), _background(page, subtotal), _background(page, total)}) == 3
    footer = page.locator(".print-only")
    assert footer.count() == 1 and not footer.is_visible()  # paper only
    page.emulate_media(media="print")
    assert footer.is_visible()
    # The tenant's zone (Europe/Berlin), not the server's UTC.
    assert "(Europe/Berlin)" in footer.inner_text()
    assert footer.inner_text().split(" (")[0].endswith(("CET", "CEST"))


def _inside(page, locator):
    """Every element of ``locator`` lies within the phone's width (without scrolling sideways)."""
    boxes = [element.bounding_box() for element in locator.all()]
    assert boxes and all(box is not None for box in boxes), boxes
    width = page.viewport_size["width"]
    return [box for box in boxes if box["x"] < 0 or box["x"] + box["width"] > width + 0.5]


def test_key_columns_are_on_screen_on_a_phone(browser, live_server, cast):  # noqa: F811
    user = User.objects.get(email="member@acme.test")
    Membership.objects.filter(user=user).update(role=Membership.Role.OWNER)  # an owner sees Revoke
    for model in cast["models"]:
        ModelPrice.objects.create(model=model, input_per_1k="0.5", output_per_1k="1.5", effective_from="2020-01-01")
    page = login(browser, live_server, cast, viewport=PHONE)

    page.goto(_url(live_server, "api_keys"))
    assert _inside(page, page.locator(".table .status")) == []
    assert _inside(page, page.get_by_role("button", name="Revoke")) == []

    page.goto(_url(live_server, "reports:monthly"))
    assert _inside(page, page.locator(".report-table td:last-child")) == []  # Cost
    assert _inside(page, page.locator(".prices-used td:last-child")) == []  # Applied
    label = "getComputedStyle(document.querySelector('.report-table td[data-label=Cost]'), '::before').content"
    assert page.evaluate(label) == '"Cost"'  # each stacked value says what it is

    page.goto(_url(live_server, "reports:operations"))
    wait_until(page, "document.getElementById('weekly-chart')?.dataset.rendered === 'true'")
    assert _inside(page, page.locator(".operations-table td[data-col=change]")) == []
    assert _inside(page, page.locator(".operations-table td[data-col=share]")) == []

    for name in ("api_keys", "reports:monthly", "reports:operations"):
        page.goto(_url(live_server, name))
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), name
