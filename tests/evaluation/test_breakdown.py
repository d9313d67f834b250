import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from overnight.evaluation.breakdown import field_table, metrics_by_bin
from overnight.evaluation.cytometry import score_dataset


def _write(folder, labels, cells, pnps, params=None):
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "labels.tif", labels)
    pd.DataFrame(cells, columns=["cell_id", "y", "x", "area_px", "cell_type", "pnp_count"]).to_csv(
        folder / "cells.csv", index=False
    )
    pd.DataFrame(pnps, columns=["z", "y", "x", "cell_id", "intensity"]).to_csv(
        folder / "pnps.csv", index=False
    )
    if params is not None:
        (folder / "params.json").write_text(json.dumps(params))


def test_metrics_per_bin_sum_the_images_of_each_bin(tmp_path):
    labels = np.zeros((20, 20), np.uint16)
    labels[2:8, 2:8] = 1
    cells = [(1, 5, 5, 36, "lymphocyte", 0)]
    for image_id, snr in (("a", 5.0), ("b", 15.0)):
        _write(tmp_path / "truth" / "truth" / image_id, labels, cells, [], {"snr": snr})
    _write(tmp_path / "pred" / "a", labels, cells, [])  # perfect
    _write(tmp_path / "pred" / "b", np.zeros_like(labels), [], [])  # misses the cell
    score = score_dataset(tmp_path / "truth", tmp_path / "pred")
    fields = field_table(score, tmp_path / "truth")
    assert list(fields["param_snr"]) == [5.0, 15.0]
    table = metrics_by_bin(fields, "param_snr", [0, 10, 20, 30])
    assert list(table["n_images"]) == [1, 1, 0]
    assert table["cell_f1"].iloc[0] == 1.0
    assert table["cell_f1"].iloc[1] == 0.0
    assert np.isnan(table["cell_f1"].iloc[2])
    assert table["n_true_cells"].sum() == 2
    assert fields["cell_f1"].tolist() == pytest.approx([1.0, 0.0])
