"""The tenant pages every page-wide check walks (accessibility, leaked template syntax): URL
names that take the tenant's slug, with the query string of each variant."""

TENANT_PAGES = [
    ("usage:dashboard", {}),
    ("usage:dashboard", {"preset": "custom", "start": "2020-01-01", "end": "2020-01-31"}),
    ("api_keys", {}),
    ("access_tokens", {}),
    ("reports:monthly", {}),
    ("reports:operations", {}),
    ("reports:prices", {}),
    ("budgets:list", {}),
    ("monitors:list", {}),
]
