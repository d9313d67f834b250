import numpy as np
import pytest

from overnight.synth import look
from overnight.synth.field import draw_field
from overnight.synth.particles import render_spots
from overnight.synth.ranges import EVALUATION_RANGES, TRAINING_RANGES, CytometryRanges


@pytest.mark.parametrize("family", ["standard", "alternate"])
def test_illumination_is_one_at_best_and_falls_by_strength(family):
    light = look.illumination(np.random.default_rng(0), (64, 80), 0.3, family)
    assert light.max() == pytest.approx(1.0, abs=1e-3)
    assert light.min() == pytest.approx(0.7, abs=1e-3)


@pytest.mark.parametrize("family", ["standard", "alternate"])
def test_background_spans_its_peak_to_peak(family):
    bg = look.background(np.random.default_rng(1), (64, 64), 20.0, family)
    assert bg.min() == pytest.approx(0.0, abs=1e-4)
    assert bg.max() == pytest.approx(20.0, abs=1e-3)


def test_spot_profiles_peak_at_one_with_the_same_half_width():
    d2 = np.array([0.0, (1.1774 * 1.3) ** 2])  # centre and half maximum of a σ=1.3 Gaussian
    for family in ("standard", "alternate"):
        values = look.spot_profile_xy(d2, 1.3, 0.0, family)
        assert values[0] == pytest.approx(1.0)
        assert values[1] == pytest.approx(0.5, abs=0.01)


def test_non_gaussian_spots_keep_their_peak_amplitude():
    points = np.array([[2.0, 10.0, 10.0]])
    for family, halo in (("standard", 0.2), ("alternate", 0.0)):
        spots = render_spots((5, 21, 21), points, np.array([50.0]), 1.2, 1.0, 1.1, halo, family)
        assert spots.max() == pytest.approx(50.0, rel=1e-3)
        assert np.unravel_index(spots.argmax(), spots.shape) == (2, 10, 10)


def test_debris_specks_are_too_small_to_be_cells():
    specks = look.debris(np.random.default_rng(2), (128, 128), 5, 100.0)
    assert (specks > 25).sum() < 5 * 40


def test_training_ranges_contain_the_spec_ranges():
    spec = CytometryRanges()
    for name, value in spec:
        wide = getattr(TRAINING_RANGES, name)
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int | float):
            assert wide[0] <= value[0] and wide[1] >= value[1], name


def test_evaluation_fields_use_the_alternate_family_and_keep_truth_consistent():
    field = draw_field(np.random.default_rng(5), 256, EVALUATION_RANGES)
    assert field.params.look_family == "alternate"
    assert set(np.unique(field.labels)) - {0} == set(field.cells.cell_id)
    assert field.cells.pnp_count.sum() == (field.pnps.cell_id > 0).sum()
