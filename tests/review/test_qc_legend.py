"""The QC picture's legend fits small fields: wrapped into rows, none wider than the picture."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image, ImageFont

from overnight.steps.qc import (
    LEGEND_GAP_PX,
    LEGEND_MARGIN_PX,
    LEGEND_MARK_PX,
    LEGEND_PX,
    legend_layout,
    render_qc_png,
)

TYPES = ("fibroblast", "macrophage")


def test_rows_never_exceed_the_width() -> None:
    assert legend_layout([60, 60, 60], 150) == [[0, 1], [2]]
    assert legend_layout([60, 60, 60], 1000) == [[0, 1, 2]]
    assert legend_layout([300, 20], 100) == [[0], [1]]  # too wide alone: a row of its own


def test_the_legend_of_a_256_px_field_is_complete() -> None:
    """The defect: on 256² fields the one-row legend ran past the right edge and was cut."""
    image = np.random.default_rng(1).normal(100, 5, (256, 256)).astype(np.float32)
    labels = np.zeros((256, 256), np.uint16)
    labels[20:60, 20:60] = 1
    labels[100:150, 100:160] = 2
    cells = pd.DataFrame(
        {
            "cell_id": [1, 2],
            "y": [40.0, 125.0],
            "x": [40.0, 130.0],
            "cell_type": list(TYPES),
            "pnp_count": [12, 130],
        }
    )
    pnps = pd.DataFrame(
        {"z": [1.0] * 3, "y": [30.0, 120.0, 200.0], "x": [30.0, 120.0, 220.0]}
        | {"cell_id": [1, 2, 0], "multiplicity": [12, 130, 1000]}
    )
    picture = Image.open(io.BytesIO(render_qc_png(image, labels, cells, pnps, TYPES)))
    font = ImageFont.load_default()
    labels_text = [
        "fibroblast (1)",
        "macrophage (1)",
        "PNP on cell (142)",
        "PNP on glass (1000)",
    ]
    widths = [LEGEND_MARK_PX + font.getlength(text) for text in labels_text]
    rows = legend_layout(widths, 256)
    assert len(rows) >= 2
    for row in rows:
        used = LEGEND_MARGIN_PX + sum(widths[i] for i in row) + LEGEND_GAP_PX * (len(row) - 1)
        assert used <= 256
    assert picture.size == (256, 256 + LEGEND_PX * len(rows))
    legend = np.asarray(picture.convert("L"))[256:]
    for number in range(len(rows)):
        strip = legend[number * LEGEND_PX : (number + 1) * LEGEND_PX]
        assert (strip < 128).any(), f"legend row {number} is empty"
    assert (legend[:, -2:] > 250).all(), "nothing of the legend may touch the right edge"
