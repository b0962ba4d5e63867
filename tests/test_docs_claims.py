"""What README.md and docs/ say about ingestion matches the code and the measured figures."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _number(text):
    return int(text.replace(",", ""))


def test_the_ingestion_doc_says_calls_are_added_as_increments():
    doc = (ROOT / "docs" / "ingestion.md").read_text()
    assert "marks its tenant's local day dirty" not in doc
    assert "increments (`usage.rollups.increments`)" in doc
    assert (ROOT / "usage" / "rollups" / "increments.py").is_file()


def _measured_import_rates():
    """import_calls calls/s in BENCHMARKS.md since the partitioned ledger (its A/B sections)."""
    text = (ROOT / "BENCHMARKS.md").read_text()
    start = text.index("### Ingestion A/B against the previous landing")
    section = text[start : text.index("\n## Scale", start)]
    rates = []
    for line in section.splitlines():
        if "import_calls" in line:
            rates += [_number(n) for n in re.findall(r"\b\d{1,2},\d{3}\b", line) if _number(n) >= 5_000]
    return rates


def test_readme_import_figure_is_the_measured_one():
    readme = (ROOT / "README.md").read_text()
    low, high = map(_number, re.search(r"`import_calls` ([\d,]+)-([\d,]+)\s+calls/s", readme).groups())
    rates = _measured_import_rates()
    assert len(rates) >= 6, rates
    # The range spans the measurements, rounded to a hundred.
    assert abs(low - min(rates)) <= 100 and abs(high - max(rates)) <= 100, (low, high, sorted(rates))
