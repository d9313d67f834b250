"""The QC picture: its size, its marks, and the same bytes for the same inputs."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image

from overnight.steps.qc import (
    LEGEND_PX,
    MIN_SIDE_PX,
    ON_CELL_COLOUR,
    TITLE_PX,
    display_factors,
    render_qc_png,
)


def _field() -> tuple[np.ndarray, np.ndarray, pd.DataFrame, pd.DataFrame]:
    image = np.random.default_rng(0).normal(100, 5, (64, 96)).astype(np.float32)
    labels = np.zeros((64, 96), np.uint16)
    labels[10:30, 10:30] = 1
    labels[30:50, 50:80] = 2
    cells = pd.DataFrame(
        {
            "cell_id": [1, 2],
            "y": [20.0, 40.0],
            "x": [20.0, 65.0],
            "cell_type": ["lymphocyte", "monocyte"],
            "pnp_count": [3, 0],
        }
    )
    pnps = pd.DataFrame(
        {
            "z": [1.0, 2.0],
            "y": [15.0, 5.0],
            "x": [14.0, 90.0],
            "cell_id": [1, 0],
            "multiplicity": [2, 1],
        }
    )
    return image, labels, cells, pnps


def test_the_picture_has_the_field_size_plus_title_and_legend() -> None:
    png = render_qc_png(*_field(), ("lymphocyte", "monocyte"), "a title", min_side_px=64)
    picture = Image.open(io.BytesIO(png))
    legend_px = picture.size[1] - 64 - TITLE_PX  # one or more legend rows (wrapped to fit)
    assert picture.size[0] == 96 and legend_px >= LEGEND_PX and legend_px % LEGEND_PX == 0
    rgb = np.asarray(picture.convert("RGB"))
    assert tuple(rgb[TITLE_PX + 15, 14]) == ON_CELL_COLOUR  # the particle on cell 1


def test_a_small_field_is_enlarged_by_a_whole_factor_with_its_marks_in_place() -> None:
    """A 64 × 96 px crop is drawn 3× (288 px wide), not as a thumbnail above its legend."""
    image, labels, cells, pnps = _field()
    picture = Image.open(io.BytesIO(render_qc_png(image, labels, cells, pnps, ("a", "b"))))
    assert display_factors((64, 96), 1024, MIN_SIDE_PX) == (1, 3)
    assert picture.size[0] == 3 * 96 and picture.size[1] - 3 * 64 >= LEGEND_PX
    rgb = np.asarray(picture.convert("RGB"))
    assert tuple(rgb[3 * 15 + 1, 3 * 14 + 1]) == ON_CELL_COLOUR  # the particle's block centre
    enlarged = render_qc_png(image, labels, cells, pnps, ("a", "b"), min_side_px=64)
    assert np.array_equal(  # the same grey pixels, each repeated 3 × 3
        rgb[:192:3, :288:3, 0][60:, :40],
        np.asarray(Image.open(io.BytesIO(enlarged)).convert("RGB"))[60:64, :40, 0],
    )


def test_large_fields_are_downsampled_and_the_bytes_are_reproducible() -> None:
    image, labels, cells, pnps = _field()
    first = render_qc_png(image, labels, cells, pnps, ("lymphocyte", "monocyte"), max_side_px=48)
    again = render_qc_png(image, labels, cells, pnps, ("lymphocyte", "monocyte"), max_side_px=48)
    assert first == again
    width, height = Image.open(io.BytesIO(first)).size
    assert width == 48 and (height - 32) >= LEGEND_PX and (height - 32) % LEGEND_PX == 0
