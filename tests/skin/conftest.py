"""Fixtures of the skin-PK tests: a tiny synthetic series and stack writers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from overnight.synth.skin import write_skin_dataset

#: The small series of the end-to-end tests: 256² px (the model's smallest field; at 128² a
#: follicle fills half the plane and the network lacks context), 4 depths, 6 timepoints.
TINY_SERIES = {"seed": 11, "size": 256, "n_depths": 4, "n_timepoints": 6, "drug_snr": 20.0}


@pytest.fixture(scope="session")
def tiny_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated skin dataset (``images/`` + ``truth/``), written once per session."""
    root = tmp_path_factory.mktemp("skin-series")
    options = dict(TINY_SERIES)
    write_skin_dataset(root, options.pop("seed"), **options)  # type: ignore[arg-type]
    return root


def _write_stack(
    path: Path,
    n_z: int = 2,
    n_c: int = 2,
    size: int = 16,
    value: int = 100,
    sidecar: dict | None = None,
) -> Path:
    """A small uint16 ``ZCYX`` stack (plane z filled with ``value + z``) and optional sidecar."""
    data = np.zeros((n_z, n_c, size, size), np.uint16)
    for z in range(n_z):
        data[z] = value + z
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data, metadata={"axes": "ZCYX"})
    if sidecar is not None:
        path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


@pytest.fixture()
def write_stack():  # type: ignore[no-untyped-def]
    """The stack writer (a fixture: the suite's importlib mode cannot import conftest)."""
    return _write_stack
