"""The FinOps Foundation's ``focus-validator`` (requirements-focus.txt) in its own venv, .venv-focus.

It needs Python 3.12 or newer and numpy < 2, so it cannot share the project's venv (Python 3.11,
pyarrow 26 with numpy 2). The venv is made on first use with the first Python 3.12 found
(``FOCUS_PYTHON``, pyenv's, /usr/bin/python3.12) and remade when
requirements-focus.txt changes.
"""

import glob
import hashlib
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
    return _errors(output, result.returncode), output


def _errors(output: str, returncode: int) -> int:
    match = re.search(r"Errors:\s*(\d+)", output) or re.search(r"(\d+)\s+failed", output)
    if match is None:
        return 1 if returncode else 0
    return int(match.group(1))
