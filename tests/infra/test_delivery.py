"""cloudbuild.yaml and infra/infra.mk: the pipeline's shape and the make targets (no network)."""

from __future__ import annotations

import re
import subprocess

import yaml
from infra_support import ROOT

BUILD = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
STEPS = {s["id"]: s for s in BUILD["steps"]}


def script(step_id: str) -> str:
    step = STEPS[step_id]
    return " ".join(str(a) for a in step.get("args", []))


def test_pipeline_steps_in_order():
    ids = [s["id"] for s in BUILD["steps"]]
    for earlier, later in [
        ("install", "lint"),
        ("lint", "test"),
        ("test", "package"),
        ("package", "terraform-init"),
        ("terraform-init", "terraform-plan"),
        ("terraform-plan", "migrate"),
        ("migrate", "terraform-apply"),
    ]:
        assert ids.index(earlier) < ids.index(later)
    assert "ruff check" in script("lint") and "ruff format --check" in script("lint")
    assert script("lint-terraform") == "fmt -check -recursive infra"
    assert "make test" in script("test")
    assert "tools/package.py" in script("package")
    assert "-backend-config=bucket=${_TF_STATE_BUCKET}" in script("terraform-init")
    assert STEPS["terraform-init"]["dir"] == "infra/environments/${_ENV}"
    assert "-out=tfplan" in script("terraform-plan")
    assert "apply -input=false tfplan" in script("terraform-apply")
    assert "cloud-migrate.sh" in script("migrate")


def test_substitutions_are_declared_and_documented():
    text = (ROOT / "cloudbuild.yaml").read_text()
    used = set(re.findall(r"\$\{(_[A-Z_]+)\}", text))
    assert used <= set(BUILD["substitutions"])
    header = text.split("\nsubstitutions:")[0]
    for name in BUILD["substitutions"]:
        assert f"#   {name} " in header, f"{name} is not documented in the header"


def test_make_targets_exist():
    # infra.mk is a fragment: the root Makefile defines PY and `venv`; stand in for them.
    root_makefile = "PY := python3\nvenv:\n\t@true\ninclude infra/infra.mk\n"
    done = subprocess.run(
        [
            "make",
            "-n",
            "-f",
            "-",
            "package",
            "deploy",
            "plan",
            "validate",
            "DRY_RUN=1",
            "DEPLOYMENT=users-api",
            "PROJECT=proj",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        input=root_makefile,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "python3 tools/package.py users-api" in out
    assert "infra/deploy/deploy.py --dry-run" in out and "--project=proj" in out
    assert "-backend-config=bucket=proj-tfstate" in out
    assert "plan -input=false -var=project_id=proj" in out
    assert "init -backend=false" in out
