"""How the browser tests and the dashboard benchmark start Debian's Chromium (headless, no network chatter)."""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
