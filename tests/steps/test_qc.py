"""The QC picture: its size, its marks, and the same bytes for the same inputs."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image

from overnight.steps.qc import LEGEND_PX, ON_CELL_COLOUR, TITLE_PX, render_qc_png


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
    png = render_qc_png(*_field(), ("lymphocyte", "monocyte"), "a title")
    picture = Image.open(io.BytesIO(png))
    legend_px = picture.size[1] - 64 - TITLE_PX  # one or more legend rows (wrapped to fit)
    assert picture.size[0] == 96 and legend_px >= LEGEND_PX and legend_px % LEGEND_PX == 0
    rgb = np.asarray(picture.convert("RGB"))
    assert tuple(rgb[TITLE_PX + 15, 14]) == ON_CELL_COLOUR  # the particle on cell 1


def test_large_fields_are_downsampled_and_the_bytes_are_reproducible() -> None:
    image, labels, cells, pnps = _field()
    first = render_qc_png(image, labels, cells, pnps, ("lymphocyte", "monocyte"), max_side_px=48)
    again = render_qc_png(image, labels, cells, pnps, ("lymphocyte", "monocyte"), max_side_px=48)
    assert first == again
    width, height = Image.open(io.BytesIO(first)).size
    assert width == 48 and (height - 32) >= LEGEND_PX and (height - 32) % LEGEND_PX == 0
