"""The QC web's numpy stand-ins for SciPy and scikit-image calls, against the originals.

The qc-web image carries neither library (pyproject.toml's ``qc`` extra); the ``test`` extra
does, so each stand-in is compared here with the call it replaces, on random inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, stats
from skimage import draw, measure

from overnight.review.edits import (
    FOUR_CONNECTED,
    dilate4,
    inside_polygon,
    label4,
    line_pixels,
    polygon_mask,
    within_radius,
)
from overnight.review.overlay import cell_boxes, cell_outlines, outline_loops
from overnight.review.stats import poisson_pmf, poisson_ppf

MEANS = (0.01, 0.3, 1.0, 2.5, 7.3, 20.0, 55.5, 130.0, 400.0)


@pytest.mark.parametrize("mean", MEANS)
def test_poisson_pmf_matches_scipy(mean: float) -> None:
    ks = np.arange(int(3 * mean) + 30)
    np.testing.assert_allclose(poisson_pmf(ks, mean), stats.poisson.pmf(ks, mean), rtol=1e-9)


@pytest.mark.parametrize("mean", MEANS)
def test_poisson_ppf_matches_scipy(mean: float) -> None:
    for q in (0.001, 0.1, 0.5, 0.9, 0.999, 0.999999):
        assert poisson_ppf(q, mean) == int(stats.poisson.ppf(q, mean)), (q, mean)


def test_line_pixels_match_skimage_draw_line() -> None:
    rng = np.random.default_rng(1)
    for y0, x0, y1, x1 in rng.integers(-20, 40, (2000, 4)).tolist():
        rows, cols = line_pixels(y0, x0, y1, x1)
        want_rows, want_cols = draw.line(y0, x0, y1, x1)
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_array_equal(cols, want_cols)


def test_label4_dilate4_within_radius_match_ndimage() -> None:
    rng = np.random.default_rng(2)
    for _ in range(50):
        mask = rng.random((40, 50)) > 0.5
        labels, count = label4(mask)
        want, want_count = ndimage.label(mask, structure=FOUR_CONNECTED)
        assert count == want_count
        np.testing.assert_array_equal(labels, want)
        values = rng.integers(0, 9, (30, 20))
        np.testing.assert_array_equal(
            dilate4(values), ndimage.grey_dilation(values, footprint=FOUR_CONNECTED)
        )
        centre = rng.random((30, 40)) > 0.97
        radius = float(rng.uniform(0.5, 7.0))
        np.testing.assert_array_equal(
            within_radius(centre, radius), ndimage.distance_transform_edt(~centre) <= radius
        )
    assert label4(np.zeros((3, 4), bool))[1] == 0


def test_polygons_match_skimage_draw() -> None:
    rng = np.random.default_rng(3)
    shape = (40, 50)
    for _ in range(300):
        rows, cols = rng.uniform(-5, 45, 6), rng.uniform(-5, 55, 6)
        want = np.zeros(shape, bool)
        want[draw.polygon(rows, cols, shape)] = True
        np.testing.assert_array_equal(inside_polygon(shape, rows, cols), want)
        # with every vertex inside the image, the perimeter too (skimage clips it otherwise)
        rows, cols = rng.uniform(0, 39, 6), rng.uniform(0, 49, 6)
        want = np.zeros(shape, bool)
        want[draw.polygon(rows, cols, shape)] = True
        want[draw.polygon_perimeter(np.round(rows), np.round(cols), shape, clip=True)] = True
        np.testing.assert_array_equal(polygon_mask(shape, list(zip(rows, cols, strict=True))), want)


def _blobs(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random((120, 140)), 3)
    return measure.label(smooth > np.percentile(smooth, 60), connectivity=1)


def test_cell_boxes_match_regionprops() -> None:
    labels = _blobs(0)
    boxes = cell_boxes(labels)
    props = measure.regionprops(labels)
    assert list(boxes) == [p.label for p in props]
    assert all(boxes[p.label] == p.bbox for p in props)
    assert cell_boxes(np.zeros((4, 4), int)) == {}


def test_outlines_enclose_exactly_each_cells_pixels() -> None:
    """Pixel centres inside the outline (skimage's points_in_poly) = the cell, holes filled."""
    for seed in (0, 1):
        for prop in measure.regionprops(_blobs(seed)):
            mask = prop.image
            corners = max(outline_loops(mask), key=len)
            rows, cols = np.mgrid[: mask.shape[0], : mask.shape[1]]
            centres = np.c_[rows.ravel() + 0.5, cols.ravel() + 0.5]
            inside = measure.points_in_poly(centres, np.array(corners, float))
            np.testing.assert_array_equal(
                inside.reshape(mask.shape), ndimage.binary_fill_holes(mask)
            )


def test_cell_outline_paths_are_in_image_pixels() -> None:
    labels = np.zeros((6, 6), int)
    labels[2:4, 1:4] = 7
    (outline,) = cell_outlines(labels, {7: "T"}, {"T": "#123456"})
    assert (outline.cell_id, outline.colour) == (7, "#123456")
    assert outline.path == "M0.5,1.5 L3.5,1.5 L3.5,3.5 L0.5,3.5 Z"
