"""Fixtures of the infrastructure tests (helpers: infra_support.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from infra_support import ROOT, evaluate_manifests_module

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
        pytest.skip("terraform is not installed")
    return path


@pytest.fixture(scope="session")
def terraform_plan(terraform: str, tmp_path_factory: pytest.TempPathFactory):
    """terraform_plan(functions_dir) -> outputs of infra/modules/manifests, by Terraform."""

    def evaluate(functions_dir: Path):
        return evaluate_manifests_module(
            terraform, functions_dir, tmp_path_factory.mktemp("tf-manifests")
        )

    return evaluate
