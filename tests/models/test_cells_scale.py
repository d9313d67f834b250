"""The cell model's input scale: resizing, scale-aware watershed, and the fit from corrections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from overnight.models.cells import (
    CellModel,
    cell_classes,
    instance_labels,
    resize_labels,
    resize_yx,
    scaled_shape,
)
from overnight.models.cells_scale import MIN_SCALE_CELLS, fit_input_scale, rescale_field
from overnight.models.config import CellModelConfig
from overnight.models.datasets import TrainingField
from overnight.models.loading import resolve_model_dir
from overnight.synth.field import draw_field
from overnight.synth.ranges import CytometryRanges


def _discs(size: int, radius: float, centres: list[tuple[float, float]]) -> np.ndarray:
    """``YX`` labels of discs (ids 1…), later discs over earlier ones."""
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.uint32)
    for index, (cy, cx) in enumerate(centres, start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = index
    return labels


def _probabilities(labels: np.ndarray) -> np.ndarray:
    """A network's ideal output for ``labels``: one-hot background / interior / boundary."""
    return np.eye(3, dtype=np.float32)[cell_classes(labels, 2)]


def test_resize_labels_keeps_the_ids_and_lands_on_the_shape() -> None:
    labels = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 3, 3], [0, 0, 3, 3]], np.uint32)
    up = resize_labels(labels, (8, 8))
    assert up.shape == (8, 8) and up.dtype == labels.dtype
    np.testing.assert_array_equal(resize_labels(up, (4, 4)), labels)
    assert set(np.unique(resize_labels(labels, (3, 5)))) <= {0, 1, 2, 3}


def test_resize_yx_keeps_trailing_axes_and_empty_channels() -> None:
    array = np.random.default_rng(0).random((40, 30, 3)).astype(np.float32)
    assert resize_yx(array, (20, 15)).shape == (20, 15, 3)
    assert resize_yx(np.zeros((40, 30, 0), np.float32), (20, 15)).shape == (20, 15, 0)
    assert resize_yx(array, (40, 30)) is array
    assert scaled_shape((384, 500), 0.625) == (240, 312)


def test_the_watershed_reads_its_pixel_parameters_in_network_pixels() -> None:
    # two touching cells, and the same scene at twice the size: at input scale 0.5 the
    # enlarged scene is cut as the small one is at scale 1 (seed height, smoothing, sizes)
    small = _discs(96, 14, [(48, 34), (48, 60)])
    large = _discs(192, 28, [(96, 68), (96, 120)])
    config = CellModelConfig(min_cell_px=400)  # a small cell is ~615 px², a large one ~2460
    assert instance_labels(_probabilities(small), config).max() == 2
    halved = config.model_copy(update={"input_scale": 0.5})
    assert instance_labels(_probabilities(large), halved).max() == 2
    # the size cut too: 300 network px² are 1200 image px² at input scale 0.5, more than a
    # small cell (~615 px²), which scale 1 keeps
    cut = config.model_copy(update={"min_cell_px": 300})
    assert instance_labels(_probabilities(small), cut).max() == 2
    halved_cut = cut.model_copy(update={"input_scale": 0.5})
    assert instance_labels(_probabilities(small), halved_cut).max() == 0


def _field(seed: int, size: int, scale: float) -> TrainingField:
    drawn = draw_field(np.random.default_rng(seed), size, CytometryRanges(cells_per_512=(24, 30)))
    field = TrainingField(f"field-{seed}", drawn.image, drawn.labels, drawn.cells, drawn.pnps, 0.2)
    return rescale_field(field, scale)


def test_rescale_field_resizes_image_labels_particles_and_pixel_size() -> None:
    field = _field(1, 128, 1.0)
    enlarged = rescale_field(field, 1.5)
    assert enlarged.image.shape == (*field.image.shape[:2], 192, 192)
    assert enlarged.labels.shape == (192, 192)
    assert enlarged.pixel_size_um == pytest.approx(0.2 / 1.5)
    assert isinstance(enlarged.pnps, pd.DataFrame)
    np.testing.assert_allclose(enlarged.pnps["y"], field.pnps["y"] * 1.5)
    assert rescale_field(field, 1.0) is field


@pytest.fixture(scope="module")
def shipped_cells() -> CellModel:
    return CellModel.load(resolve_model_dir("", "cells"))


def test_the_fit_finds_the_size_of_enlarged_cells(shipped_cells: CellModel) -> None:
    # cells 1.6x the trained size: the shipped model at scale 1 splits and merges them
    fields = [_field(seed, 256, 1.6) for seed in (11, 12, 13)]
    fit = fit_input_scale(shipped_cells, fields)
    assert fit.n_true_cells >= MIN_SCALE_CELLS
    assert fit.chosen in (0.55, 0.625, 0.7)
    assert fit.f1_by_scale[fit.chosen] > fit.f1_by_scale[1.0] + 0.02
    assert "input scale 1 -> " in fit.line()


def test_cells_of_the_trained_size_keep_the_scale(shipped_cells: CellModel) -> None:
    fit = fit_input_scale(shipped_cells, [_field(seed, 256, 1.0) for seed in (11, 12, 13)])
    assert fit.chosen == 1.0


def test_too_few_cells_keep_the_scale_untried(shipped_cells: CellModel) -> None:
    field = _field(21, 128, 1.6)
    labels = np.where(field.labels == field.labels.max(), field.labels, 0)  # one cell
    fit = fit_input_scale(
        shipped_cells, [TrainingField("one", field.image, labels, None, None, 0.2)]
    )
    assert fit.chosen == 1.0 and fit.f1_by_scale == {}
    assert "kept" in fit.line()


def test_the_model_at_a_scale_sees_enlarged_cells_as_trained(shipped_cells: CellModel) -> None:
    field = _field(31, 256, 1.6)
    at_scale = shipped_cells.with_config(
        shipped_cells.config.model_copy(update={"input_scale": 0.625})
    )
    from overnight.models.cells import cell_input

    image = cell_input(field.image[:, 0].astype(np.float32), at_scale.config)
    probabilities, _ = at_scale.probabilities(image)
    assert probabilities.shape == (*image.shape, 3)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-3)
    labels = instance_labels(probabilities, at_scale.config)
    true_ids = np.unique(field.labels[field.labels > 0])
    assert abs(int(labels.max()) - len(true_ids)) <= max(2, len(true_ids) // 10)
