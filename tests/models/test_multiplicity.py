"""How many particles a basin holds: basin features, the fitted classifier, spots from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from overnight.models.config import PnpModelConfig
from overnight.models.multiplicity import (
    FEATURES,
    MAX_PARTICLES,
    MultiplicityModel,
    basin_features,
    fit_multiplicity,
    particles_per_basin,
)
from overnight.models.pnp import blob_peak, density_basins, density_target, extract_spots

CONFIG = PnpModelConfig()


def _field() -> tuple[np.ndarray, pd.DataFrame]:
    """A density with a lone particle, a merged pair and a lone particle far away."""
    pnps = pd.DataFrame(
        {"z": [4.0, 5.0, 5.3, 3.0], "y": [12.0, 40.0, 40.5, 50.0], "x": [12.0, 30.0, 30.4, 50.0]}
    )
    return density_target((10, 64, 64), pnps, CONFIG), pnps


def test_basin_features_see_a_merged_pair_as_twice_a_single() -> None:
    density, pnps = _field()
    basins = density_basins(density, CONFIG)
    features = basin_features(
        density, density / blob_peak(CONFIG), basins, 100.0, blob_peak(CONFIG)
    )
    particles = particles_per_basin(basins, pnps[["z", "y", "x"]].to_numpy())
    assert features.shape == (int(basins.max()), len(FEATURES))
    assert sorted(particles.tolist()) == [1, 1, 2]
    integral = features[:, FEATURES.index("integral")]
    single, pair = integral[particles == 1], integral[particles == 2][0]
    assert 0.8 < single.min() <= single.max() < 1.0  # the basin drops the blob's faint tails
    assert abs(pair / single.mean() - 2.0) < 0.2
    spread = features[:, FEATURES.index("spread_major_px")]
    assert spread[particles == 2][0] > spread[particles == 1].max()


def _synthetic_basins(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows whose integral under-reads the particle number, as a trained net's does."""
    particles = rng.choice([0, 1, 2, 3], size=n, p=[0.05, 0.75, 0.15, 0.05])
    integral = 0.82 * particles + 0.07 + rng.normal(0, 0.12 + 0.1 * np.sqrt(particles), n)
    rows = np.zeros((n, len(FEATURES)))
    rows[:, FEATURES.index("integral")] = integral
    rows[:, FEATURES.index("integral_squared")] = integral**2
    rows[:, FEATURES.index("spread_major_px")] = 1.0 + 0.3 * particles + rng.normal(0, 0.2, n)
    return rows, particles


def test_expected_counts_are_unbiased_where_rounding_is_not() -> None:
    rng = np.random.default_rng(3)
    model = fit_multiplicity(*_synthetic_basins(rng, 4000))
    rows, particles = _synthetic_basins(rng, 4000)
    expected = model.expected(rows)
    rounded = np.maximum(1, np.rint(rows[:, FEATURES.index("integral")]))
    assert abs(expected.sum() / particles.sum() - 1) < 0.02
    cells = np.arange(len(rows)) // 25  # per-cell sums: rounding errors add up, expectations not

    def cell_mae(estimate: np.ndarray) -> float:
        return float(
            np.mean(np.abs(np.rint(np.bincount(cells, estimate)) - np.bincount(cells, particles)))
        )

    assert cell_mae(expected) < 0.7 * cell_mae(rounded)
    assert model.probabilities(rows).shape == (len(rows), MAX_PARTICLES + 1)


def test_the_model_is_saved_and_reloaded(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    model = fit_multiplicity(*_synthetic_basins(rng, 500))
    assert MultiplicityModel.load(tmp_path) is None
    model.save(tmp_path)
    reloaded = MultiplicityModel.load(tmp_path)
    assert reloaded is not None
    rows, _ = _synthetic_basins(rng, 50)
    np.testing.assert_allclose(reloaded.expected(rows), model.expected(rows))


def test_spots_carry_the_models_expectation() -> None:
    density, pnps = _field()
    basins = density_basins(density, CONFIG)
    normalised = density / blob_peak(CONFIG)
    features = basin_features(density, normalised, basins, 100.0, blob_peak(CONFIG))
    particles = particles_per_basin(basins, pnps[["z", "y", "x"]].to_numpy())
    model = fit_multiplicity(np.repeat(features, 30, axis=0), np.repeat(particles, 30))
    spots = extract_spots(density, density, CONFIG, model, normalised)
    assert spots.expected is not None and len(spots.expected) == len(spots) == 4
    assert spots.multiplicity.sum() == 4
    assert abs(spots.expected.sum() - 4) < 0.3
    with pytest.raises(ValueError, match="network input"):
        extract_spots(density, density, CONFIG, model)


def test_training_fits_the_model_on_every_basin_of_the_fields(tiny_dataset: Path) -> None:
    from overnight.models.datasets import read_dataset
    from overnight.models.pnp_training import FieldDensity, fit_basin_multiplicity

    items = []
    for field in read_dataset(tiny_dataset):
        assert field.pnps is not None
        shape = field.image[:, 1].shape
        density = density_target(shape, field.pnps, CONFIG)  # what a perfect network outputs
        items.append(FieldDensity(field, density / blob_peak(CONFIG), density, density))
    assert fit_basin_multiplicity(CONFIG, items[:1]) is None  # too few basins to learn from
    model = fit_basin_multiplicity(CONFIG, items * 2)  # the tiny set twice passes MIN_BASINS
    assert model is not None
    n_true = sum(len(item.field.pnps) for item in items if item.field.pnps is not None)
    spots = [extract_spots(i.density, i.volume_adu, CONFIG, model, i.normalised) for i in items]
    found = sum(float(s.expected.sum()) for s in spots if s.expected is not None)
    assert abs(found / n_true - 1) < 0.03
