import numpy as np
import pytest

from overnight.steps.cell_shape import aspect_ratios, merged_cells_mask, waist
from overnight.steps.cells import focus_projection
from overnight.steps.flags import (
    FlagThresholds,
    QcReport,
    background_level,
    cell_coverage,
    cell_signals,
    cell_snr,
    network_confidence,
    pixel_noise,
    qc_report,
    raise_flags,
    saturated_fraction,
)
from overnight.synth.field import draw_field
from overnight.synth.ranges import CytometryRanges


def _field(body_adu: float):
    ranges = CytometryRanges(
        cell_signal_adu=(body_adu, body_adu), gain=(2.0, 2.0), read_noise_adu=(8.0, 8.0)
    )
    return draw_field(np.random.default_rng(1), 256, ranges)


def test_pixel_noise_recovers_white_noise_under_a_gradient():
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 200, 256)[None, :] * np.ones((256, 1))
    assert pixel_noise(ramp + rng.normal(0, 5.0, (256, 256))) == pytest.approx(5.0, rel=0.1)


def test_cell_snr_follows_body_brightness():
    dim, bright = _field(10.0), _field(200.0)
    snr_dim = cell_snr(focus_projection(dim.image[:, 0]), dim.labels)
    snr_bright = cell_snr(focus_projection(bright.image[:, 0]), bright.labels)
    assert 0.6 < snr_dim < 1.6  # the spec's "per-pixel SNR about 1" at the lowest gain
    assert snr_bright > 10 * snr_dim


def test_a_dim_field_is_flagged_and_a_bright_one_is_not():
    reports = {}
    for body in (8.0, 200.0):
        field = _field(body)
        reports[body] = qc_report(
            field.image[:, 0],
            field.image[:, 1],
            focus_projection(field.image[:, 0]),
            field.labels,
            0.2,
            np.ones(len(field.cells)),
            field.pnps["intensity"].to_numpy(),
        )
    assert "dim_cells" in reports[8.0].flags
    assert reports[200.0].flags == ()
    assert reports[200.0].as_dict()["doubt"] == 0


def test_each_threshold_raises_its_flag():
    signals = {
        "cell_snr": 10.0,
        "pnp_snr": 2.0,
        "median_cell_diameter_um": 30.0,
        "small_cell_fraction": 0.5,
        "missed_fraction": 0.3,
        "unsupported_fraction": 0.5,
        "merged_fraction": 0.5,
        "mean_confidence": 0.5,
        "type_uncertain_fraction": 0.9,
        "saturated_fraction": 0.01,
        "focus_ratio": 1.0,
    }
    assert raise_flags(signals, FlagThresholds()) == (
        "cell_size_off",
        "dim_particles",
        "fragmented",
        "low_confidence",
        "merged_cells",
        "missed_cells",
        "out_of_focus",
        "saturated",
        "types_uncertain",
        "unsupported_cells",
    )
    assert raise_flags({}, FlagThresholds()) == ()  # missing signals raise nothing


def test_network_confidence_on_a_literal_map():
    probs = np.zeros((2, 2, 3))
    probs[..., 0] = [[1.0, 0.0], [0.0, 0.0]]
    probs[..., 1] = [[0.0, 0.9], [0.5, 0.0]]
    probs[..., 2] = [[0.0, 0.1], [0.5, 1.0]]
    mean, uncertain = network_confidence(probs)
    assert mean == pytest.approx((0.9 + 0.5 + 1.0) / 3)
    assert uncertain == pytest.approx(1 / 3)


def test_saturation_counts_the_top_of_the_range():
    volume = np.zeros((2, 10, 10), np.uint16)
    volume[0, 0, :5] = 65535
    assert saturated_fraction(volume) == pytest.approx(5 / 200)
    assert saturated_fraction(volume.astype(np.float32)) == 0.0


def test_report_json_has_no_nan():
    report = QcReport({"cell_snr": float("nan")}, ())
    assert report.as_dict() == {"flags": [], "doubt": 0, "signals": {"cell_snr": None}}


def test_saturation_is_read_on_the_stored_image_not_the_float_channels():
    field = _field(200.0)
    raw = field.image.copy()
    raw[0, 0, :8, :] = 65535  # a saturated band in the stored uint16 image
    channels = raw.astype(np.float32)
    report = qc_report(
        channels[:, 0],
        channels[:, 1],
        focus_projection(channels[:, 0]),
        field.labels,
        0.2,
        np.ones(len(field.cells)),
        field.pnps["intensity"].to_numpy(),
        raw=raw,
    )
    assert "saturated" in report.flags


def _disks(shape, centres, radius):
    """Instance labels of disks (``YX`` uint32), ids 1.. in the order of ``centres``."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint32)
    for i, (y, x) in enumerate(centres, start=1):
        labels[(yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = i
    return labels


def test_background_level_follows_a_ramp_under_the_cells():
    ramp = np.add.outer(np.linspace(0.0, 40.0, 96), np.linspace(100.0, 180.0, 96))
    cells = _disks((96, 96), [(48, 48)], 15)
    image = ramp + 50.0 * (cells > 0)
    level = background_level(image, cells == 0, scale_px=12.0)
    assert np.abs(level - ramp)[cells > 0].max() < 3.0  # the disk's 50 ADU stay out of it


def test_cell_snr_ignores_a_background_ramp():
    rng = np.random.default_rng(3)
    cells = _disks((192, 192), [(50, 50), (140, 60), (90, 140)], 18)
    flat = 100.0 + 8.0 * (cells > 0) + rng.normal(0, 8.0, cells.shape)
    ramp = np.add.outer(np.zeros(192), np.linspace(-60.0, 60.0, 192))
    assert cell_snr(flat, cells) == pytest.approx(1.0, abs=0.25)
    assert cell_snr(flat + ramp, cells) == pytest.approx(cell_snr(flat, cells), abs=0.25)


def test_coverage_sees_a_missed_cell_and_an_invented_one():
    rng = np.random.default_rng(4)
    truth = _disks((160, 160), [(40, 40), (40, 120), (120, 80)], 16)
    image = 100.0 + 40.0 * (truth > 0) + rng.normal(0, 8.0, truth.shape)
    background = np.full(truth.shape, 100.0, np.float32)
    found = cell_coverage(image, truth, background, min_area_px=100)
    assert found.missed_fraction == 0.0
    assert found.unsupported_fraction == 0.0
    dropped = np.where(truth == 3, 0, truth)  # the network missed the third cell
    missed = cell_coverage(image, dropped, background, min_area_px=100)
    assert missed.missed_fraction == pytest.approx(1 / 3, abs=0.08)
    invented = truth.copy()
    invented[_disks(truth.shape, [(120, 20)], 12) > 0] = 4  # a cell where there is only noise
    assert cell_coverage(image, invented, background, 100).unsupported_fraction == 0.25


def test_cell_signals_flag_cells_missed_in_a_dim_field():
    field = _field(14.0)
    image = focus_projection(field.image[:, 0])
    kept = np.where(np.isin(field.labels, [1, 2, 3]), field.labels, 0)
    all_found = cell_signals(image, field.labels, 0.2, np.ones(3), 5.0)
    some_found = cell_signals(image, kept, 0.2, np.ones(3), 5.0)
    assert all_found["missed_fraction"] < 0.04 < some_found["missed_fraction"]
    assert "missed_cells" in raise_flags(some_found, FlagThresholds())


def test_two_touching_cells_under_one_label_count_as_elongated():
    pair = _disks((64, 96), [(32, 30), (32, 60)], 15)  # two disks that touch
    merged = (pair > 0).astype(np.uint32)
    ratios = aspect_ratios(pair)
    assert ratios == pytest.approx([1.0, 1.0], abs=0.05)
    assert aspect_ratios(merged)[0] == pytest.approx(np.sqrt(5.0), abs=0.05)  # analytic
    image = 100.0 + 50.0 * (pair > 0)
    signals = cell_signals(image, merged, 0.2, np.ones(1), 5.0)
    assert signals["elongated_fraction"] == 1.0
    assert signals["merged_fraction"] == 1.0  # long and pinched where the two bodies meet
    assert waist(merged > 0) > 0.5
    assert "merged_cells" in raise_flags(signals, FlagThresholds())
    apart = cell_signals(image, pair, 0.2, np.ones(2), 5.0)
    assert apart["elongated_fraction"] == apart["merged_fraction"] == 0.0


def test_convex_elongated_cells_do_not_count_as_merged():
    """A cell cut by the field's edge, an oval cell, half of a split cell: long, no waist."""
    yy, xx = np.mgrid[:96, :96]
    cut = _disks((96, 96), [(48, 4)], 20)[:, 10:]  # a disk cut by the field's left edge
    oval = ((yy - 48) / 30.0) ** 2 + ((xx - 48) / 13.0) ** 2 <= 1.0
    half = _disks((96, 96), [(48, 48)], 30)[:, :48]  # a round cell split down the middle
    for labels in (cut, oval.astype(np.uint32), half):
        assert aspect_ratios(labels)[0] > 1.8
        assert waist(labels > 0) < 0.02
        signals = cell_signals(100.0 + 50.0 * (labels > 0), labels, 0.2, np.ones(1), 5.0)
        assert signals["elongated_fraction"] == 1.0
        assert signals["merged_fraction"] == 0.0
        assert "merged_cells" not in raise_flags(signals, FlagThresholds())


def test_merged_cells_mask_counts_only_the_pinched_long_cells():
    pair = _disks((64, 160), [(32, 30), (32, 60)], 15)
    labels = np.where(pair > 0, 1, 0).astype(np.uint32)
    labels[_disks((64, 160), [(32, 125)], 15) > 0] = 2  # a round cell beside the merged pair
    merged = merged_cells_mask(labels, aspect_ratios(labels), 1.8, 0.08)
    assert merged.tolist() == [True, False]


def test_network_confidence_equals_the_top_class_mean():
    rng = np.random.default_rng(3)
    probabilities = rng.dirichlet((1.0, 1.0, 1.0), size=(40, 30)).astype(np.float32)
    top = probabilities.max(axis=-1)[probabilities[..., 0] < 0.5]
    mean, uncertain = network_confidence(probabilities)
    assert mean == float(top.mean()) and uncertain == float((top < 0.6).mean())
