"""Fixtures of the infrastructure tests (helpers: infra_support.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from infra_support import (
    ROOT,
    evaluate_manifests_module,
    offline_init,
    offline_plan,
    offline_plugin_dir,
    offline_workspace,
)

from shared.manifests import Catalog, load


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes minutes (builds a virtualenv from PyPI)")


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load(ROOT / "functions")


@pytest.fixture(scope="session")
def terraform() -> str:
    path = shutil.which("terraform")
    if not path:
        pytest.fail("terraform is not installed (tools/setup.sh names what is missing)")
    return path


@pytest.fixture(scope="session")
def terraform_plan(terraform: str, tmp_path_factory: pytest.TempPathFactory):
    """terraform_plan(functions_dir) -> outputs of infra/modules/manifests, by Terraform."""

    def evaluate(functions_dir: Path):
        return evaluate_manifests_module(
            terraform, functions_dir, tmp_path_factory.mktemp("tf-manifests")
        )

    return evaluate


@pytest.fixture(scope="session")
def offline_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """-plugin-dir with the schema-only hashicorp/google provider (infra/offline)."""
    return offline_plugin_dir(tmp_path_factory.mktemp("tf-plugins"))


@pytest.fixture(scope="session")
def offline_infra(terraform: str, offline_plugins: Path, tmp_path_factory: pytest.TempPathFactory):
    """A copy of infra/ with every environment initialised on the schema-only provider."""
    work = offline_workspace(tmp_path_factory.mktemp("tf-offline"))
    for env in sorted((work / "infra" / "environments").iterdir()):
        offline_init(terraform, env, offline_plugins)
    return work / "infra"


@pytest.fixture(scope="session")
def offline_plans(terraform: str, offline_infra: Path):
    """env -> `terraform plan` of infra/environments/<env> as JSON (computed once per env)."""
    plans: dict[str, dict] = {}

    def plan(env: str) -> dict:
        if env not in plans:
            plans[env] = offline_plan(terraform, offline_infra / "environments" / env)
        return plans[env]

    return plan
