"""The FinOps Foundation's ``focus-validator`` (requirements-focus.txt) in its own venv, .venv-focus.

It needs Python 3.12 or newer and numpy < 2, so it cannot share the project's venv (Python 3.11,
pyarrow 26 with numpy 2). The venv is made on first use with the first Python 3.12 found
(``FOCUS_PYTHON``, pyenv's, /usr/bin/python3.12) and remade when
requirements-focus.txt changes.
"""

import fcntl
import glob
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from ..conftest import required

ROOT = Path(settings.BASE_DIR)
VENV = ROOT / ".venv-focus"
REQUIREMENTS = ROOT / "requirements-focus.txt"


def _works(python: str) -> bool:
    """Whether ``python`` runs and is 3.12 (numpy < 2, which the validator pins, has no wheels for 3.13)."""
    check = [python, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"]
    return subprocess.run(check, capture_output=True).returncode == 0


def _python() -> str | None:
    candidates = [os.environ.get("FOCUS_PYTHON")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")), reverse=True)
    candidates += ["/usr/bin/python3.12", "/usr/local/bin/python3.12"]
    return next((c for c in candidates if c and _works(c)), None)


def validator_venv() -> Path:
    """.venv-focus, made or remade first when needed (one process at a time: parallel test runs)."""
    with open(ROOT / ".venv-focus.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _made_venv()


def _made_venv() -> Path:
    stamp = VENV / ".installed"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return VENV
    python = _python()
    if python is None:
        message = "focus-validator needs Python 3.12 (set FOCUS_PYTHON)"
        pytest.fail(message) if required("REQUIRE_SERVICES") else pytest.skip(message)
    subprocess.run([python, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True, timeout=900)
    stamp.write_text(digest)
    return VENV


def validate(csv_path: Path) -> tuple[int, str]:
    """(errors, output) of the validator on a FOCUS 1.2 CSV, with its rules as shipped (no download)."""
    venv = validator_venv()
    site = next((venv / "lib").glob("python3.*/site-packages"))
    # The validator reads its currency list by a path relative to its package's parent folder.
    result = subprocess.run(
        [
            str(venv / "bin" / "focus-validator"),
            "--data-file",
            str(csv_path.resolve()),
            "--validate-version",
            "1.2.0.1",
            "--block-download",
            "--output-type",
            "console",
            "--show-violations",
        ],
        cwd=site,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    return _errors(output, result.returncode, _or_alternatives(site)), output


def _or_alternatives(site: Path) -> dict[str, str]:
    """{rule: the OR rule it is one alternative of} in the shipped rules (e.g. InvoiceId-C-004-C,
    "must be null", and -005-C, "must not be null", under -003-C)."""
    rules = json.loads((site / "focus_validator" / "rules" / "model-1.2.0.1.json").read_text())["ModelRules"]
    alternatives = {}
    for name, rule in rules.items():
        requirement = (rule.get("ValidationCriteria") or {}).get("Requirement") or {}
        if requirement.get("CheckFunction") == "OR":
            for item in requirement.get("Items", []):
                if item.get("CheckFunction") == "CheckModelRule":
                    alternatives[item["ModelRuleId"]] = name
    return alternatives


def _errors(output: str, returncode: int, alternatives: dict[str, str]) -> int:
    """Failed rules, less the failed alternatives of an OR rule that passed: the validator lists
    each alternative's result on its own line, so one of "null" / "not null" always fails."""
    if not re.search(r"Total:\s*\d+\s*\|\s*Pass:\s*\d+\s*\|\s*Fail:\s*\d+", output):
        return max(returncode, 1)  # no summary: the validator did not run
    passed = set(re.findall(r"^\S+ (\S+): PASS", output, re.MULTILINE))
    failed = set(re.findall(r"^\S+ (\S+): FAIL", output, re.MULTILINE))
    return len({rule for rule in failed if alternatives.get(rule) not in passed})
