"""The corrected numbers: an annotation's tables summarised like ``summary.csv``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from overnight.review.stats import corrected_cells_table, corrected_summary

LABELS = np.array([[1, 1, 0, 2], [1, 1, 0, 2], [0, 0, 0, 0]], dtype=np.uint32)
SPOTS = np.array([[0.0, 0.0, 2.0], [1.0, 3.0, 1.0], [2.0, 2.0, 1.0]])


def test_corrected_summary_counts_cells_types_and_particles() -> None:
    cells = corrected_cells_table(LABELS, SPOTS, {1: "HeLa", 2: "HeLa"})
    spots = pd.DataFrame(
        {"y_px": SPOTS[:, 0], "x_px": SPOTS[:, 1], "multiplicity": [2, 1, 1], "cell_id": [1, 2, 0]}
    )
    summary = corrected_summary(cells, spots)
    assert summary["n_cells"] == 2 and summary["n_HeLa"] == 2
    assert summary["n_pnps"] == 4 and summary["n_pnps_on_glass"] == 1
    assert summary["pnps_HeLa"] == 3
    assert summary["pnp_per_cell_mean"] == 1.5
    assert math.isclose(summary["pnp_per_cell_vmr"], 0.5 / 1.5)
