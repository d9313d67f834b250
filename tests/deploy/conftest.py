"""Shared pieces of the deployment tests: the Kubernetes versions we validate against."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Oldest and newest Kubernetes versions the chart, k8s/ and the Job spec support.
#: 1.29 is the oldest with podFailurePolicy on by default that still gets vendor support
#: (GKE/AKS long-term channels); 1.37 is the newest schema kubernetes-validate bundles.
K8S_VERSIONS = ("1.29.0", "1.37.0")


def validate_strict(doc: dict[str, Any]) -> None:
    """Validate one manifest strictly (unknown fields fail) for every supported version."""
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            kind = doc.get("kind")
            name = doc.get("metadata", {}).get("name")
            raise AssertionError(
                f"{kind}/{name} invalid for Kubernetes {version}: {err.message} "
                f"at {'/'.join(map(str, err.path))}"
            ) from err


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def strict_validate() -> Callable[[dict[str, Any]], None]:
    """:func:`validate_strict`, as a fixture (test modules do not import conftest)."""
    return validate_strict
