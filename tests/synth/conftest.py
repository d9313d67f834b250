"""Fields drawn once per test session for the invariant tests of the cytometry generator."""

from __future__ import annotations

import numpy as np
import pytest

from overnight.synth import SyntheticField, draw_field


@pytest.fixture(scope="session")
def fields() -> list[SyntheticField]:
    """Six 512² fields from independent seeds (about 120 cells, 2500 particles)."""
    return [draw_field(np.random.default_rng(seed)) for seed in range(6)]
