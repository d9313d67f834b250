"""Worker thread settings: the cores shared out among workers, limits set before models load."""

from __future__ import annotations

import os
import sys

import pytest

from overnight.models import threads
from overnight.models.threads import (
    available_cores,
    configure_threads,
    configured_threads,
    limit_blas_threads,
    threads_for,
)


def test_workers_share_the_cores() -> None:
    assert threads_for(2, cores=2) == 1
    assert threads_for(1, cores=2) == 2
    assert threads_for(4, cores=16) == 4
    assert threads_for(3, setting=5, cores=2) == 5


def test_configure_threads_sets_the_variables_read_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # as in a fresh worker
    blas: list[int] = []
    monkeypatch.setattr(threads, "limit_blas_threads", blas.append)  # keep this process's BLAS
    configure_threads(1)
    assert blas == [1]
    assert os.environ["TF_NUM_INTRAOP_THREADS"] == "1"
    assert os.environ["TF_NUM_INTEROP_THREADS"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "1"


def test_zero_threads_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        configure_threads(0)


def test_the_loaded_openblas_libraries_take_the_limit() -> None:
    """NumPy's OpenBLAS (loaded before any worker starts) is found and set."""
    import numpy as np

    np.ones((4, 4)) @ np.ones((4, 4))  # NumPy's BLAS is loaded
    assert limit_blas_threads(available_cores()) >= 1  # the default count: nothing changes


def test_inference_threads_follow_the_worker_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    assert configured_threads() == 1
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS")
    assert configured_threads() >= 1
