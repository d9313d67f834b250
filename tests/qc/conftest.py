"""Fixtures of the QC service tests: real pipeline results, cached for the session.

The results come from the embedded pipeline run on a few synthetic fields (with sidecar
metadata, one of them holding an XSS payload, and one corrupt file that fails). Tests that
write verdicts get their own copy.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from overnight_qc.app import create_app


def _load_helpers() -> None:
    """Make ``qc_helpers`` (beside this file) importable: the suite uses importlib mode."""
    if "qc_helpers" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "qc_helpers", Path(__file__).with_name("qc_helpers.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["qc_helpers"] = module
    spec.loader.exec_module(module)


_load_helpers()
from qc_helpers import make_results, settings_for  # noqa: E402


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded run's output folder (read-only: copy it before writing verdicts)."""
    return make_results(tmp_path_factory.getbasetemp() / "qc-results")


@pytest.fixture
def dataset_dir(results_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the results, named ``run1`` (the dataset id in dataset-dir mode)."""
    target = tmp_path / "run1"
    shutil.copytree(results_dir, target)
    return target


@pytest.fixture
def client(dataset_dir: Path) -> Iterator[TestClient]:
    """A test client of the app over a private copy of the results."""
    with TestClient(create_app(settings_for(dataset_dir))) as test_client:
        yield test_client
