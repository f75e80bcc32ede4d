"""README.md's generated sections and the decisions index must match what they describe."""

import dataclasses
import re
import subprocess
import sys

from shared import config
from shared.config import ROOT
from shared.manifests import catalog

DECISIONS = ROOT / "docs" / "decisions"


def test_readme_catalogue_is_current():
    result = _check("catalogue")
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


def _check(part: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "tools/catalogue.py", "--check", "--only", part],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_readme_configuration_table_is_generated_from_the_settings():
    result = _check("configuration")
    assert result.returncode == 0, result.stderr + "\n(run `make docs`)"
    table = _section("configuration")
    for st in config.describe():
        assert f"| `{st.env}`" in table, st.env
        assert st.doc in table, st.env


def test_every_setting_is_declared_with_its_variable_and_meaning():
    derived = {"in_cloud"}  # computed from K_SERVICE and SWITCHYARD_ENV, not read
    for f in dataclasses.fields(config.Settings):
        if f.name in derived:
            continue
        assert f.metadata.get("env") and f.metadata.get("doc"), (
            f"Settings.{f.name}: declare it with setting(ENV_VAR, meaning, default)"
        )
    names = [s.env for s in config.describe()]
    assert len(names) == len(set(names)), "two settings read the same variable"


def test_readme_architecture_shows_every_schedule_deployment():
    result = _check("architecture")
    assert result.returncode == 0, result.stderr + "\n(run `make docs`)"
    picture = _section("architecture")
    for name, d in catalog().deployments.items():
        if d.trigger == "schedule":
            assert name in picture, name


def test_a_stale_part_is_named(tmp_path):
    readme = (ROOT / "README.md").read_text()
    start = "<!-- configuration:start -->\n"
    stale = readme.replace(start, start + "| `NOT_A_SETTING` | - | stale |\n")
    copy = tmp_path / "tools"
    copy.mkdir()
    (copy / "catalogue.py").write_text((ROOT / "tools" / "catalogue.py").read_text())
    (tmp_path / "README.md").write_text(stale)
    (tmp_path / "shared").symlink_to(ROOT / "shared")
    (tmp_path / "functions").symlink_to(ROOT / "functions")
    result = subprocess.run(
        [sys.executable, "tools/catalogue.py", "--check", "--only", "configuration"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "README.md configuration stale: run `make docs`" in result.stderr


def _section(part: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(f"<!-- {part}:start -->", 1)[1].split(f"<!-- {part}:end -->", 1)[0]
