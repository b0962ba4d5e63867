"""Screenshots of the demo data (``make demo``) at 1440 and 390 px, for README and this folder.

Run against a server with the demo data: ``python docs/screenshots/take.py http://127.0.0.1:8000``.
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
PAGES = [
    ("usage", "/t/demo/usage/"),
    ("usage-today", "/t/demo/usage/?preset=today"),
    ("usage-bars", "/t/demo/usage/?preset=last_30_days"),
    ("usage-range", "/t/demo/usage/"),
    ("operations", "/t/demo/operations/"),
    ("operations-key", "/t/demo/operations/"),
    ("report", "/t/demo/reports/monthly/"),
]
WIDTHS = {"1440": {"width": 1440, "height": 1000}, "390": {"width": 390, "height": 844}}


def main(base):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        for width, viewport in WIDTHS.items():
            page = browser.new_page(viewport=viewport)
            page.goto(f"{base}/accounts/login/")
            page.get_by_label("Email", exact=True).fill("demo@example.com")
            page.get_by_label("Password", exact=True).fill("demo-usage-2024")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_load_state("networkidle")
            for name, path in PAGES:
                page.goto(base + path)
                page.wait_for_load_state("networkidle")
                if name == "usage-bars":
                    page.get_by_role("button", name="Stacked bars").click()
                if name == "usage-range":  # the range picker open on a custom span
                    page.get_by_role("button", name="Time range").click()
                    page.get_by_label("Custom", exact=True).check()
                if name == "operations-key":  # the week before the latest, one API key
                    page.get_by_label("Week", exact=True).select_option(index=1)
                    key = page.get_by_label("API Key", exact=True)
                    key.select_option(key.locator("option", has_text="production-web").get_attribute("value"))
                    page.get_by_role("button", name="Show").click()
                    page.wait_for_load_state("networkidle")
                page.wait_for_timeout(300)
                page.screenshot(path=str(HERE / f"{name}-{width}.png"), full_page=True)
                if name == "usage" and width == "1440":
                    page.screenshot(path=str(HERE.parent / "screenshot.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:8000")
