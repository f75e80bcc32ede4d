"""README.md's endpoint and event catalogue is generated; it must match the code."""

import subprocess
import sys

from shared.config import ROOT


def test_readme_catalogue_is_current():
    result = subprocess.run(
        [sys.executable, "tools/catalogue.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr + "\n(run `make docs`)"
