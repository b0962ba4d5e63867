"""The import rules of docs/architecture.md, checked on the source: imports point down.

Every import counts, those inside functions too (a lazy import is how a cycle hides), and the
rules hold transitively: a package may not reach a forbidden one through any chain of imports.
Imports under ``if TYPE_CHECKING:`` are left out: they never run. Where the code breaks a rule
today, the import is listed in ``KNOWN`` with its reason, so that any new break fails; an entry
that no longer exists in the code fails too, so that the list only shrinks.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("usage", "accounts", "usageproject")

SUBPACKAGES = (
    "api",
    "budgets",
    "dashboard",
    "demo",
    "ingestion",
    "integrations",
    "ledger",
    "management",
    "monitors",
    "pricebook",
    "reporting",
    "rollups",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every first-party module by dotted name (migrations left out: they import only models)."""
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imported_names(source: str, package: str) -> set[str]:
    """Every name a module's source imports, at any depth (functions and classes included), as
    dotted names: ``from usage import x`` gives ``usage.x``; relative imports are resolved
    against ``package``."""
    names: set[str] = set()
    stack: list[ast.AST] = [ast.parse(source)]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parents, *([node.module] if node.module else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                stack.extend(child.orelse)  # type: ignore[attr-defined]
            else:
                stack.append(child)
    return names


def first_party(name: str) -> str | None:
    """The module a dotted name lives in (``usage.models.Budget`` is ``usage.models``), or None."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


@cache
def graph() -> dict[str, frozenset[str]]:
    """Module -> the first-party modules it imports, less the ``KNOWN`` exceptions."""
    result = {}
    for name, path in modules().items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = {first_party(imported) for imported in imported_names(path.read_text(), package)}
        result[name] = frozenset(t for t in targets if t and t != name and (name, t) not in KNOWN)
    return result


def chain(start: str, forbidden: tuple[str, ...]) -> list[str] | None:
    """The shortest chain of imports from ``start`` to a module under ``forbidden``, or None."""
    paths = {start: [start]}
    queue = [start]
    for current in queue:
        for target in sorted(graph()[current]):
            if target in paths:
                continue
            paths[target] = [*paths[current], target]
            if under(target, forbidden) and not under(target, ANNOUNCEMENTS):
                return paths[target]
            queue.append(target)
    return None


# Signals any layer may subscribe to: importing one loads nothing of the layer that sends it.
ANNOUNCEMENTS = ("usage.ingestion.signals",)


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


USAGE_ALL = (
    *tuple(f"usage.{sub}" for sub in SUBPACKAGES),
    "usage.admin",
    "usage.apps",
    "usage.signals",
    "usage.tasks",
    "usage.warehouse",
)
HTTP = ("usage.api", "usage.dashboard")
TOP = ("usage.management", "usage.demo", "usage.apps", "usage.admin", "usage.tasks", "usage.integrations")
WRITERS = ("usage.ingestion", "usage.rollups", "usage.ledger")
FEATURES = ("usage.budgets", "usage.monitors", "usage.pricebook")


def but(names: tuple[str, ...], *allowed: str) -> tuple[str, ...]:
    return tuple(name for name in names if name not in allowed)


# Subject (a package or module prefix) -> what it may not reach, through any chain of imports.
# Shared ground any layer may use: usage.models, usage.localtime, usage.histograms, usage.pricing_rules, usage.outages
# (logging an outage, publishing a task without waiting) and usageproject's helpers.
RULES: dict[str, tuple[str, ...]] = {
    # accounts/ is below usage/: people, tenants and keys know nothing of calls.
    "accounts": (*USAGE_ALL, "usage.models", "usage.localtime", "usage.histograms"),
    # The shared ground reaches no layer.
    "usage.models": USAGE_ALL,
    "usage.localtime": USAGE_ALL,
    "usage.histograms": USAGE_ALL,
    "usage.pricing_rules": USAGE_ALL,
    "usage.outages": USAGE_ALL,
    # Writers: the ledger at the bottom, then the rollups, then ingestion; none reads the query
    # layer or reaches a feature, a page, the API or the tasks that call them.
    "usage.ledger": but(USAGE_ALL, "usage.ledger"),
    "usage.rollups": but(USAGE_ALL, "usage.rollups", "usage.ledger"),
    "usage.ingestion": but(USAGE_ALL, "usage.ingestion", "usage.rollups", "usage.ledger"),
    # The query layer reads models and local time only.
    "usage.reporting": but(USAGE_ALL, "usage.reporting"),
    # Features read through the query layer; none writes the ledger or reaches a page.
    "usage.pricebook": but(USAGE_ALL, "usage.pricebook", "usage.reporting"),
    "usage.budgets": (*HTTP, *TOP, *WRITERS, "usage.monitors", "usage.pricebook", "usage.tasks", "usage.warehouse"),
    "usage.monitors": (*HTTP, *TOP, *WRITERS, "usage.pricebook", "usage.tasks", "usage.warehouse"),
    # The page and the API read through the query layer and the features; neither imports the
    # other; neither imports the tasks, the demo or the commands.
    "usage.dashboard": (*TOP, "usage.api", "usage.ingestion", "usage.rollups", "usage.warehouse", "usage.monitors"),
    "usage.api": (*TOP, "usage.dashboard", "usage.warehouse"),
    # The LiteLLM callback runs in another process: it imports nothing of the product.
    "usage.integrations": (*PACKAGES,),
    # Demo data goes through the writers; it reads nothing and serves no request.
    "usage.demo": (*HTTP, *FEATURES, "usage.reporting", "usage.tasks", "usage.management", "usage.integrations"),
    # Commands call services; they serve no request.
    "usage.management": (*HTTP, "usage.integrations"),
}

# (importer, imported): imports that break a rule or make a cycle today, each with its reason.
KNOWN: dict[tuple[str, str], str] = {
    # The query layer's cycle of 7 modules (query, costs, costs_sql, day_costs, filters, grid,
    # selectors), held apart by imports inside UsageQuery's methods: the value and its answers are
    # to be split so imports point one way (issue 29, a later session).
    ("usage.reporting.query", "usage.reporting.costs"): "UsageQuery answers lazily: value and answers not yet split",
    ("usage.reporting.query", "usage.reporting.filters"): "UsageQuery answers lazily: value and answers not yet split",
    ("usage.reporting.query", "usage.reporting.grid"): "UsageQuery answers lazily: value and answers not yet split",
    (
        "usage.reporting.query",
        "usage.reporting.selectors",
    ): "UsageQuery answers lazily: value and answers not yet split",
    # The Celery pattern of the style guide: the service imports its task at module level, the
    # task imports the service inside its body; a cycle all the same.
    ("usage.budgets.tasks", "usage.budgets.services"): "task imports its service lazily (Celery pattern)",
    # budgets' REST endpoints reuse the read API's base view, scope and schema; usage/api/ also
    # holds the gateway's endpoints, so the edge reaches ingestion's validation: to go when the
    # gateway leaves api/ (issue 29).
    (
        "usage.budgets.api",
        "usage.api.schema",
    ): "budgets' REST endpoints on the API's base; api/ still holds the gateway",
    ("usage.budgets.api", "usage.api.scope"): "budgets' REST endpoints on the API's base; api/ still holds the gateway",
    ("usage.budgets.api", "usage.api.views"): "budgets' REST endpoints on the API's base; api/ still holds the gateway",
    # monitors' REST endpoints, the same way as budgets'.
    (
        "usage.monitors.api",
        "usage.api.schema",
    ): "monitors' REST endpoints on the API's base, as budgets'",
    ("usage.monitors.api", "usage.api.scope"): "monitors' REST endpoints on the API's base, as budgets'",
    ("usage.monitors.api", "usage.api.views"): "monitors' REST endpoints on the API's base, as budgets'",
}


def subjects(prefix: str) -> list[str]:
    return [name for name in modules() if under(name, (prefix,))]


@pytest.mark.parametrize("subject", sorted(RULES))
def test_imports_point_down(subject):
    assert subjects(subject), f"{subject} has no modules"
    forbidden = tuple(name for name in RULES[subject] if not under(name, (subject,)))
    broken = {name: chain(name, forbidden) for name in subjects(subject)}
    assert {name: " -> ".join(path) for name, path in broken.items() if path} == {}


def test_every_subpackage_has_a_rule():
    packages = {f"usage.{path.parent.name}" for path in (ROOT / "usage").glob("*/__init__.py")}
    assert packages - {"usage.migrations"} == {f"usage.{sub}" for sub in SUBPACKAGES}
    assert {f"usage.{sub}" for sub in SUBPACKAGES} | {"accounts"} <= set(RULES)


def test_no_import_cycle():
    """No module reaches itself through its imports (lazy ones included), the known ones aside."""
    cycles = {name: path for name in modules() if (path := chain_to_self(name))}
    assert cycles == {}


def chain_to_self(start: str) -> list[str] | None:
    paths = {target: [start, target] for target in graph()[start]}
    queue = list(paths)
    for current in queue:
        if current == start:
            return paths[current]
        for target in sorted(graph()[current]):
            if target not in paths:
                paths[target] = [*paths[current], target]
                queue.append(target)
    return None


@pytest.mark.parametrize(("importer", "imported"), sorted(KNOWN))
def test_known_exception_still_exists(importer, imported):
    """A known exception that was fixed leaves the list: the list only shrinks."""
    path = modules()[importer]
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    assert imported in {first_party(name) for name in imported_names(path.read_text(), package)}


def test_only_the_app_the_admin_and_the_commands_import_the_tasks():
    importers = {name for name, targets in graph().items() if "usage.tasks" in targets}
    assert importers <= {"usage.apps", "usage.admin", "usage.management.commands.purge_calls"}, importers


def test_ingestion_announces_stored_calls_and_budgets_subscribe(monkeypatch):
    """The writer does not load the readers: budgets hear of stored calls through a signal."""
    from usage.budgets import receivers
    from usage.ingestion.signals import calls_stored

    heard = []
    monkeypatch.setattr(receivers, "budgets_after_ingest", heard.append)
    calls_stored.send(sender=None, tenant_ids={7: None})
    assert heard == [{7: None}]
    assert "usage.ingestion.signals" in graph()["usage.ingestion.services"]
    assert not any(under(name, ("usage.budgets",)) for name in graph()["usage.ingestion.services"])


def test_the_rule_sees_lazy_and_relative_imports():
    source = "def f():\n    from usage.tasks import rollup_tenant\n    from . import selectors\n"
    assert {"usage.tasks", "usage.budgets.selectors"} <= imported_names(source, "usage.budgets")


def test_the_rule_skips_type_checking_imports():
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from usage.tasks import x\nelse:\n    import usage.api\n"
    )
    names = imported_names(source, "usage")
    assert "usage.tasks" not in names
    assert "usage.api" in names
