"""The import rules of docs/architecture.md, checked on the source: imports point down.

Every import counts, those inside functions too (a lazy import is how a cycle hides).
"""

import ast
from pathlib import Path

import pytest

USAGE = Path(__file__).resolve().parent.parent / "usage"


def imported_modules(path):
    """Every module a file imports, as dotted names (``from usage import x`` gives ``usage.x``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def files_of(package):
    return sorted((USAGE / package).rglob("*.py"))


def offending(package, forbidden):
    found = []
    for path in files_of(package):
        for name in imported_modules(path):
            if any(name == prefix or name.startswith(prefix + ".") for prefix in forbidden):
                found.append(f"{path.relative_to(USAGE.parent)} imports {name}")
    return found


RULES = {
    # The query layer reads models and local time only: no page, API, writer or task above it.
    "reporting": [
        "usage.api",
        "usage.dashboard",
        "usage.ingestion",
        "usage.rollups",
        "usage.ledger",
        "usage.tasks",
        "usage.budgets",
        "usage.demo",
    ],
    # The page and the API read through the query layer; neither imports the other.
    "dashboard": ["usage.api", "usage.ingestion", "usage.tasks"],
    "api": ["usage.dashboard", "usage.tasks"],
    # Writers never import readers or the tasks that call them.
    "ingestion": ["usage.reporting", "usage.dashboard", "usage.api", "usage.tasks"],
    "rollups": ["usage.reporting", "usage.dashboard", "usage.api", "usage.ingestion", "usage.tasks"],
    "ledger": ["usage.reporting", "usage.dashboard", "usage.api", "usage.ingestion", "usage.rollups", "usage.tasks"],
}


@pytest.mark.parametrize("package", sorted(RULES))
def test_imports_point_down(package):
    assert files_of(package), f"usage/{package}/ has no modules"
    assert offending(package, RULES[package]) == []


def test_only_the_app_and_the_commands_import_the_tasks():
    importers = {
        str(path.relative_to(USAGE.parent))
        for path in USAGE.rglob("*.py")
        if path.name != "tasks.py" and "usage.tasks" in imported_modules(path)
    }
    assert importers <= {"usage/apps.py", "usage/management/commands/purge_calls.py"}, importers


def test_the_rule_sees_lazy_imports(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from usage.tasks import rollup_tenant\n    return rollup_tenant\n")
    assert "usage.tasks" in imported_modules(module)
