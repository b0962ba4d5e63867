"""How the browser tests and the dashboard benchmark start Debian's Chromium (headless, no network chatter)."""

import time

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def wait_until(page, expression, timeout=15.0):
    """Poll ``expression`` until it is truthy.

    Not ``page.wait_for_function``: its polling evaluates the expression as a string inside the
    page, which the Content-Security-Policy (no 'unsafe-eval') refuses. ``page.evaluate`` goes
    through the DevTools protocol, which the policy does not cover.
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {expression}")
        page.wait_for_timeout(50)
