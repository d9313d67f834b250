"""QC flags on doubtful skin planes: each signal raises its flag, a clean plane raises none."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import overnight.skin.flags as flags_module
from overnight.skin.flags import (
    PlaneFlag,
    PlaneQuality,
    QcThresholds,
    flag_planes,
    pixel_noise_sd,
)

COMPARTMENTS = ("stratum_corneum", "viable_epidermis", "hair_follicle", "dermis", "adipose")


def _plane(rng: np.random.Generator, drug_above: float = 200.0, texture: float = 400.0):
    """One 64² plane at 30 µm: viable epidermis with a follicle, noise σ 5 in both channels."""
    labels = np.full((1, 64, 64), 2, np.uint8)
    labels[0, 20:40, 20:40] = 3
    yy, xx = np.indices((64, 64))
    structure = 1000 + texture * np.sin(yy / 5.0) * np.cos(xx / 7.0) + rng.normal(0, 5, (64, 64))
    drug = 100 + drug_above * (labels[0] == 3) + rng.normal(0, 5, (64, 64))
    stack = np.stack([structure, drug])[None]
    return stack, labels


def test_doctests() -> None:
    assert doctest.testmod(flags_module, raise_on_error=False).failed == 0


def test_a_clean_plane_raises_no_flag() -> None:
    quality = _quality(_confidence(0.95, 0.95), seed=0)  # 0.95 everywhere
    assert quality.flags == () and not quality.doubtful
    assert quality.drug_snr == pytest.approx(40.0, rel=0.15)  # 200 ADU over σ 5
    assert quality.fractions["hair_follicle"] == pytest.approx(400 / 4096)
    assert sum(quality.fractions.values()) == pytest.approx(1.0)


def test_drug_at_noise_level_is_flagged_only_after_dosing() -> None:
    stack, labels = _plane(np.random.default_rng(1), drug_above=4.0)
    (after,) = flag_planes(stack, labels, [30.0], COMPARTMENTS, drug_level_adu=100.0)
    (before,) = flag_planes(
        stack, labels, [30.0], COMPARTMENTS, drug_level_adu=100.0, expect_drug=False
    )
    assert PlaneFlag.LOW_DRUG_SNR in after.flags and "drug SNR" in after.reasons[0]
    assert PlaneFlag.LOW_DRUG_SNR not in before.flags
    # without a known level the plane's darkest pixels give it (here: the noise around 100)
    stack, labels = _plane(np.random.default_rng(1))
    (estimated,) = flag_planes(stack, labels, [30.0], COMPARTMENTS)
    assert estimated.flags == () and estimated.drug_snr == pytest.approx(40.0, rel=0.15)


def test_flat_structure_and_unsure_model_are_flagged() -> None:
    quality = _quality(np.full((1, 64, 64), 0.55), seed=2, texture=3.0)
    assert PlaneFlag.LOW_STRUCTURE_CONTRAST in quality.flags
    assert PlaneFlag.UNCERTAIN_SEGMENTATION in quality.flags
    # without the model's probabilities there is no confidence to report
    assert np.isnan(_quality(None, seed=2, texture=3.0).mean_max_probability)


def test_compartments_that_do_not_fit_the_depth_are_flagged() -> None:
    stack, labels = _plane(np.random.default_rng(3))
    dermis_at_surface = np.full_like(labels, 4)
    (surface,) = flag_planes(stack, dermis_at_surface, [0.0], COMPARTMENTS, drug_level_adu=100.0)
    (deep,) = flag_planes(stack, dermis_at_surface, [100.0], COMPARTMENTS, drug_level_adu=100.0)
    assert PlaneFlag.IMPLAUSIBLE_COMPARTMENTS in surface.flags and "dermis" in surface.reasons[-1]
    assert deep.flags == ()
    unlabelled = np.zeros_like(labels)
    (none,) = flag_planes(stack, unlabelled, [100.0], COMPARTMENTS, drug_level_adu=100.0)
    assert PlaneFlag.IMPLAUSIBLE_COMPARTMENTS in none.flags
    lenient = QcThresholds(max_none=1.0)
    assert (
        flag_planes(
            stack,
            unlabelled,
            [100.0],
            COMPARTMENTS,
            drug_level_adu=100.0,
            thresholds=lenient,
            expect_drug=False,
        )[0].flags
        == ()
    )


def test_noise_estimate_ignores_smooth_structure() -> None:
    rng = np.random.default_rng(4)
    ramp = np.linspace(0, 5000, 256)[None, :] * np.ones((256, 1))
    assert pixel_noise_sd(ramp + rng.normal(0, 8, (256, 256))) == pytest.approx(8, rel=0.1)


def test_shapes_must_fit() -> None:
    stack, labels = _plane(np.random.default_rng(5))
    with pytest.raises(ValueError, match="must fit"):
        flag_planes(stack, labels[:, :10], [30.0], COMPARTMENTS, drug_level_adu=100.0)
    with pytest.raises(ValueError, match="depths"):
        flag_planes(stack, labels, [0.0, 30.0], COMPARTMENTS, drug_level_adu=100.0)


def _confidence(plane: float, follicle: float) -> np.ndarray:
    """Max probability ``plane`` everywhere, ``follicle`` on the plane's 20² follicle."""
    probability = np.full((1, 64, 64), plane)
    probability[0, 20:40, 20:40] = follicle
    return probability


def _quality(
    probability: np.ndarray | None, seed: int = 6, texture: float = 400.0, **limits: float
) -> PlaneQuality:
    """The quality of the test plane (noise of ``seed``) with this max-probability map."""
    stack, labels = _plane(np.random.default_rng(seed), texture=texture)
    (quality,) = flag_planes(
        stack,
        labels,
        [30.0],
        COMPARTMENTS,
        drug_level_adu=100.0,
        max_probability=probability,
        thresholds=QcThresholds(**limits),
    )
    return quality


def _segmentation_flags(probability: np.ndarray, **limits: float) -> tuple[PlaneFlag, ...]:
    return _quality(probability, **limits).flags


def test_a_confident_plane_reports_its_confidence_and_raises_no_flag() -> None:
    quality = _quality(_confidence(0.97, 0.95), seed=7)
    assert quality.flags == ()
    assert quality.follicle_max_probability == pytest.approx(0.95)
    assert quality.unsure_share == 0.0


def test_an_unsure_follicle_in_a_confident_plane_is_flagged() -> None:
    # plane mean 0.96: the plane-wide signal misses it
    quality = _quality(_confidence(0.97, 0.7), seed=8)
    assert quality.flags == (PlaneFlag.UNSURE_FOLLICLE,)
    assert quality.mean_max_probability > QcThresholds().min_mean_max_probability
    assert quality.follicle_max_probability == pytest.approx(0.7)
    assert "follicle mean max probability 0.70" in quality.reasons[0]


def test_an_unsure_plane_is_flagged_with_its_unsure_share() -> None:
    probability = _confidence(0.97, 0.97)
    probability[0, :, :16] = 0.5  # a quarter of the plane unsure: mean 0.85
    quality = _quality(probability, seed=9)
    assert quality.flags == (PlaneFlag.UNCERTAIN_SEGMENTATION,)
    assert quality.unsure_share == pytest.approx(0.25)
    assert "25% of pixels below 0.6" in quality.reasons[0]


def test_each_confidence_bound_is_strict() -> None:
    # binary fractions, so that the means are exact
    at_bounds = {"min_mean_max_probability": 0.75, "min_follicle_max_probability": 0.5}
    assert _segmentation_flags(_confidence(0.75, 0.75), **at_bounds) == ()
    assert _segmentation_flags(_confidence(0.625, 0.625), **at_bounds) == (
        PlaneFlag.UNCERTAIN_SEGMENTATION,
    )
    assert _segmentation_flags(_confidence(0.875, 0.5), **at_bounds) == ()
    assert _segmentation_flags(_confidence(0.875, 0.375), **at_bounds) == (
        PlaneFlag.UNSURE_FOLLICLE,
    )
    # the shipped bounds, on either side
    assert _segmentation_flags(_confidence(0.895, 0.9)) == ()
    assert _segmentation_flags(_confidence(0.885, 0.9)) == (PlaneFlag.UNCERTAIN_SEGMENTATION,)
    assert _segmentation_flags(_confidence(0.95, 0.845)) == (PlaneFlag.UNSURE_FOLLICLE,)
    assert _segmentation_flags(_confidence(0.95, 0.855)) == ()


def test_a_follicle_too_small_or_absent_is_not_judged() -> None:
    stack, labels = _plane(np.random.default_rng(10))
    probability = _confidence(0.97, 0.5)
    # the 400 px follicle is 9.8 % of the plane: under a 10 % floor it is not judged
    assert _segmentation_flags(probability, min_follicle_share=0.1) == ()
    without = ("stratum_corneum", "viable_epidermis", "dermis", "adipose")
    (quality,) = flag_planes(
        stack, labels, [30.0], without, drug_level_adu=100.0, max_probability=probability
    )
    assert np.isnan(quality.follicle_max_probability)
    assert PlaneFlag.UNSURE_FOLLICLE not in quality.flags
