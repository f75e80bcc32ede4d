"""README.md's generated sections and the decisions index must match what they describe."""

import re
import subprocess
import sys

from shared.config import ROOT

DECISIONS = ROOT / "docs" / "decisions"


def test_readme_catalogue_is_current():
    result = subprocess.run(
        [sys.executable, "tools/catalogue.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr + "\n(run `make docs`)"


def test_every_decision_is_in_the_index_with_its_number_and_title():
    index = (DECISIONS / "README.md").read_text()
    rows = dict(re.findall(r"^\| \[\d{4}\]\(([^)]+)\) \| ([^|]+?) \| [^|]+ \|$", index, re.M))
    files = sorted(p for p in DECISIONS.glob("*.md") if p.name != "README.md")
    assert files
    for path in files:
        assert re.fullmatch(r"\d{4}-[a-z0-9-]+\.md", path.name), f"{path.name}: NNNN-<slug>.md"
        assert path.name in rows, f"docs/decisions/README.md does not list {path.name}"
        heading = path.read_text().splitlines()[0]
        number = path.name[:4]
        assert heading.startswith(f"# {number} "), f"{path.name} opens with '# {number} <title>'"
        assert rows[path.name] == heading.removeprefix(f"# {number} ").strip(), path.name
    assert set(rows) == {p.name for p in files}, "the index lists a file that does not exist"
    numbers = [p.name[:4] for p in files]
    assert len(numbers) == len(set(numbers)), "two decisions share a number"
