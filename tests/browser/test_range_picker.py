"""The range picker of the Usage Statistics page in Chromium: keyboard, custom days, phone, no JavaScript."""

import datetime as dt
import re

import pytest
from django.urls import reverse

from usage.localtime import tenant_today

from .test_dashboard_browser import (  # noqa: F401 (fixtures)
    PASSWORD,
    browser,
    cards,
    cast,
    expected,
    login,
    trend_data,
    wait_rendered,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _checked(page):
    return page.locator('#range-panel input[name="preset"]:checked').input_value()


def _focused(page):
    return page.evaluate("(({name, value, id}) => [name || '', value || id])(document.activeElement)")


def test_keyboard_opens_arrows_without_navigating_escapes_and_applies(browser, live_server, cast):  # noqa: F811
    today = tenant_today(cast["tenant"])
    page = login(browser, live_server, cast)
    start_url = page.url
    page.evaluate("window.notReloaded = true")
    button = page.get_by_role("button", name="Time range")
    assert button.get_attribute("aria-expanded") == "false"
    assert "Last 2 weeks" in button.inner_text()
    button.focus()
    page.keyboard.press("Enter")
    assert button.get_attribute("aria-expanded") == "true"
    assert page.get_by_role("dialog", name="Time range").is_visible()
    assert _focused(page) == ["preset", "last_2_weeks"]  # focus goes to the range in force

    # Arrowing through the presets selects them, and nothing navigates.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.wait_for_timeout(300)
    assert _checked(page) == "this_month"
    assert page.url == start_url and page.evaluate("window.notReloaded") is True

    # Escape closes unchanged and returns focus to the button.
    page.keyboard.press("Escape")
    assert not page.locator("#range-panel").is_visible()
    assert button.get_attribute("aria-expanded") == "false"
    assert page.evaluate("document.activeElement.id") == "range-button"
    assert _checked(page) == "last_2_weeks"

    # Enter on a preset applies it.
    page.keyboard.press("ArrowDown")  # on the button: opens
    assert page.locator("#range-panel").is_visible()
    page.keyboard.press("ArrowDown")
    assert page.url == start_url
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"preset=last_30_days"))
    wait_rendered(page)
    assert "start=" not in page.url
    assert cards(page) == expected(cast, today - dt.timedelta(days=29), today)
    assert "Last 30 days" in page.get_by_role("button", name="Time range").inner_text()

    # A single custom day, by keyboard only: Custom, One day, type the day, Enter.
    day = today - dt.timedelta(days=3)
    page.get_by_role("button", name="Time range").focus()
    page.keyboard.press("Enter")
    for _ in range(3):  # last_30_days -> this_month -> last_month -> custom
        page.keyboard.press("ArrowDown")
    assert _checked(page) == "custom" and page.locator("#range-custom").is_visible()
    page.keyboard.press("Tab")
    assert _focused(page) == ["range_mode", "span"]
    page.keyboard.press("ArrowUp")
    assert _focused(page) == ["range_mode", "day"] and not page.locator("#id_end").is_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "id_start"
    page.locator("#id_start").fill(day.isoformat())
    page.wait_for_timeout(200)
    assert "preset=custom" not in page.url
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"preset=custom&start={day}&end={day}"))
    wait_rendered(page)
    assert cards(page) == expected(cast, day, day)
    assert page.locator("#trend-bucket").inner_text() == "by hour"


def test_custom_multi_day_range_shows_the_numbers_of_its_url(browser, live_server, cast):  # noqa: F811
    key = cast["keys"][1]
    today = tenant_today(cast["tenant"])
    first, last = today - dt.timedelta(days=10), today - dt.timedelta(days=4)
    page = login(browser, live_server, cast)
    page.get_by_label("API Key", exact=True).select_option(key.public_id)
    page.wait_for_url(re.compile(rf"api_key={key.public_id}"))
    wait_rendered(page)
    page.get_by_role("button", name="Time range").click()
    page.get_by_label("Custom", exact=True).check()
    assert page.evaluate("document.activeElement.id") == "id_start"  # a pointer choice of Custom goes to the dates
    # Custom starts from the days in force (the default Last 2 weeks), to be changed.
    assert page.get_by_label("From", exact=True).input_value() == (today - dt.timedelta(days=13)).isoformat()
    assert page.get_by_label("To", exact=True).input_value() == today.isoformat()
    page.get_by_label("Several days").check()
    page.get_by_label("From", exact=True).fill(first.isoformat())
    page.get_by_label("To", exact=True).fill(last.isoformat())
    page.get_by_role("button", name="Apply range").click()
    page.wait_for_url(re.compile(rf"api_key={key.public_id}&preset=custom&start={first}&end={last}$"))
    wait_rendered(page)
    picked = cards(page)
    assert picked == expected(cast, first, last, key=key)
    assert picked["calls"] > 0
    assert page.get_by_role("button", name="Time range").inner_text().startswith(f"{first:%b %d} – {last:%b %d}")

    # The same URL typed in gives the same numbers and the same chart.
    direct = browser.new_page()
    direct.context.add_cookies(page.context.cookies())
    url = reverse("usage:dashboard", kwargs={"slug": "acme"})
    direct.goto(f"{live_server.url}{url}?api_key={key.public_id}&start={first}&end={last}")
    wait_rendered(direct)
    assert cards(direct) == picked
    assert trend_data(direct) == trend_data(page)

    # A reversed range is refused in the page, before any navigation.
    page.get_by_role("button", name="Time range").click()
    page.get_by_label("From", exact=True).fill(last.isoformat())
    page.get_by_label("To", exact=True).fill(first.isoformat())
    here = page.url
    page.get_by_role("button", name="Apply range").click()
    assert page.locator("#range-error").inner_text() == "The last day is before the first day."
    assert page.url == here

    # A click outside closes it unchanged.
    page.locator("h1").click()
    assert not page.locator("#range-panel").is_visible()
    assert page.locator("#id_start").input_value() == first.isoformat()


def test_a_preset_clicked_applies_at_once(browser, live_server, cast):  # noqa: F811
    today = tenant_today(cast["tenant"])
    page = login(browser, live_server, cast)
    page.get_by_role("button", name="Time range").click()
    page.get_by_label("Yesterday", exact=True).check()
    page.wait_for_url(re.compile(r"preset=yesterday$"))
    wait_rendered(page)
    yesterday = today - dt.timedelta(days=1)
    assert cards(page) == expected(cast, yesterday, yesterday)


def test_picker_fits_a_phone(browser, live_server, cast):  # noqa: F811
    page = login(browser, live_server, cast, viewport={"width": 390, "height": 844})
    page.get_by_role("button", name="Time range").click()
    page.get_by_label("Custom", exact=True).check()
    box = page.locator("#range-panel").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    for name in ("Apply range", "Cancel"):
        control = page.get_by_role("button", name=name).bounding_box()
        assert control["x"] + control["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.get_by_role("button", name="Cancel").click()
    assert not page.locator("#range-panel").is_visible()


def test_without_javascript_the_plain_form_works(browser, live_server, cast):  # noqa: F811
    today = tenant_today(cast["tenant"])
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/?next=/t/acme/usage/")
    page.get_by_label("Email", exact=True).fill("member@acme.test")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/t/acme/usage/"))
    assert not page.locator("#range-button").is_visible()  # no button that would do nothing
    page.get_by_label("Last 7 days", exact=True).check()
    page.get_by_role("button", name="Apply", exact=True).click()
    page.wait_for_url(re.compile(r"preset=last_7_days"))
    assert cards(page) == expected(cast, today - dt.timedelta(days=6), today)

    first, last = today - dt.timedelta(days=5), today - dt.timedelta(days=2)
    page.get_by_label("Custom", exact=True).check()
    page.get_by_label("From", exact=True).fill(first.isoformat())
    page.get_by_label("To", exact=True).fill(last.isoformat())
    page.get_by_role("button", name="Apply", exact=True).click()
    page.wait_for_url(re.compile(rf"start={first}&end={last}"))
    assert cards(page) == expected(cast, first, last)
    context.close()
