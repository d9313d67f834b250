"""Generator looks: spec is the historical generator, training widens it, evaluation differs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from overnight.errors import ConfigError
from overnight.synth.skin import draw_depths_um, draw_skin_series
from overnight.synth.skin_look import EVALUATION_LOOK, LOOKS, SPEC_LOOK, TRAINING_LOOK, draw
from overnight.synth.skin_tissue import HF

RANGES = [
    f.name
    for f in dataclasses.fields(SPEC_LOOK)
    if isinstance(getattr(SPEC_LOOK, f.name), tuple) and f.name != "name"
]


def test_a_constant_range_draws_nothing() -> None:
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert draw(rng, (3.0, 3.0)) == 3.0 and rng.bit_generator.state == state
    assert 1.0 <= draw(rng, (1.0, 2.0)) <= 2.0


def test_spec_look_is_the_default() -> None:
    by_name = draw_skin_series(
        np.random.default_rng(5), size=64, n_depths=3, n_timepoints=2, look="spec"
    )
    default = draw_skin_series(np.random.default_rng(5), size=64, n_depths=3, n_timepoints=2)
    assert np.array_equal(by_name.stack(1), default.stack(1))
    assert default.look == "spec"


@pytest.mark.parametrize("name", RANGES)
def test_training_ranges_contain_the_spec_ranges(name: str) -> None:
    spec, trained = getattr(SPEC_LOOK, name), getattr(TRAINING_LOOK, name)
    assert trained[0] <= spec[0] and spec[1] <= trained[1], (name, spec, trained)


def test_training_widens_what_the_model_names() -> None:
    assert TRAINING_LOOK.follicle_diameter_um == (40.0, 120.0)
    assert TRAINING_LOOK.contrast[0] < 1 < TRAINING_LOOK.contrast[1]
    assert TRAINING_LOOK.rim_level[0] < 0 < TRAINING_LOOK.rim_level[1]  # dark and bright rims
    assert TRAINING_LOOK.drug_snr[0] < 3 and TRAINING_LOOK.drug_snr[1] > 30


def test_evaluation_stays_inside_the_model_and_renders_differently() -> None:
    look = EVALUATION_LOOK
    assert look.follicle_diameter_um == SPEC_LOOK.follicle_diameter_um
    assert look.adipocyte_diameter_um == SPEC_LOOK.adipocyte_diameter_um
    assert look.drug_snr == (3.0, 30.0) and look.n_depths == (4, 12)
    # acini: always in the evaluation look, in half the training series (both mechanisms)
    assert look.lobule_acini and not TRAINING_LOOK.lobule_acini
    assert 0.0 < TRAINING_LOOK.lobule_acini_chance < 1.0
    assert set(LOOKS) == {"spec", "training", "evaluation"}


@pytest.mark.parametrize("look", ["spec", "training", "evaluation"])
def test_follicle_truth_is_the_whole_cross_section(look: str) -> None:
    """IMAGING_MODEL.md §2: ring, sheath, lumen and shaft are all follicle — no holes."""
    series = draw_skin_series(
        np.random.default_rng(7), size=256, n_depths=4, n_timepoints=1, look=look
    )
    tissue = series.tissue.tissue
    for plane in tissue:
        follicle = plane == HF
        assert follicle.any()
        assert np.array_equal(ndimage.binary_fill_holes(follicle), follicle)


def test_training_series_vary_and_stay_valid() -> None:
    rng = np.random.default_rng(3)
    means, depths = [], []
    for _ in range(4):
        series = draw_skin_series(rng, size=96, n_timepoints=2, look=TRAINING_LOOK)
        stack = series.stack(1)
        assert stack.dtype == np.uint16 and np.isfinite(series.tissue.structure).all()
        assert series.tissue.structure.min() >= 0
        means.append(float(stack[:, 0].mean()))
        depths.append(len(series.depths_um))
    assert max(means) > 1.5 * min(means)  # brightness is randomised


def test_depth_jitter_keeps_depths_increasing_from_zero() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        depths = draw_depths_um(rng, 8, EVALUATION_LOOK)
        assert depths[0] == 0 and np.all(np.diff(depths) > 0)
    even = draw_depths_um(np.random.default_rng(1), 5)
    assert np.allclose(np.diff(even), even[1], atol=0.02)


def test_unknown_look_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown skin look"):
        draw_skin_series(np.random.default_rng(0), size=64, look="glossy")
