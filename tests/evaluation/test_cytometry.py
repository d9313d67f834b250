from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from overnight.errors import ConfigError, InvalidImageError, ObjectNotFoundError
from overnight.evaluation import (
    FieldTruth,
    count_error_table,
    read_field_tables,
    score_dataset,
    score_field,
)
from overnight.evaluation.cytometry import empty_prediction
from overnight.synth import write_dataset


def square_labels(*boxes, shape=(20, 30)):
    """Labels 1..n from (y0, y1, x0, x1) boxes, drawn in order."""
    labels = np.zeros(shape, np.uint32)
    for cell_id, (y0, y1, x0, x1) in enumerate(boxes, start=1):
        labels[y0:y1, x0:x1] = cell_id
    return labels


def field(labels, types=None, counts=None, pnps=()):
    ids = np.unique(labels[labels > 0]).tolist()
    cells = pd.DataFrame(
        {
            "cell_id": ids,
            "y": 0.0,
            "x": 0.0,
            "area_px": [int((labels == i).sum()) for i in ids],
            "cell_type": types or ["lymphocyte"] * len(ids),
            "pnp_count": counts or [0] * len(ids),
        }
    )
    table = pd.DataFrame(list(pnps), columns=["z", "y", "x"], dtype=float)
    table["cell_id"] = 0
    table["intensity"] = 50.0
    return FieldTruth(labels=labels, cells=cells, pnps=table)


def test_perfect_prediction_scores_one():
    truth = field(
        square_labels((0, 10, 0, 10), (10, 20, 0, 10), (2, 8, 15, 25)),
        types=["lymphocyte", "monocyte", "monocyte"],
        counts=[3, 0, 12],
        pnps=[(1.0, 2.0, 3.0), (4.0, 15.0, 5.5)],
    )
    score = score_field(truth, truth)
    assert (score.cell_f1, score.mean_iou, score.type_accuracy, score.pnp_f1) == (1, 1, 1, 1)
    assert score.count_mae == 0
    assert (score.cell_tp, score.cell_fp, score.cell_fn) == (3, 0, 0)


def test_shifted_cell_matches_until_iou_drops_below_one_half():
    truth = field(square_labels((0, 10, 0, 10)))
    shifted_3 = field(square_labels((0, 10, 3, 13)))  # IoU 70 / 130
    shifted_4 = field(square_labels((0, 10, 4, 14)))  # IoU 60 / 140
    score = score_field(truth, shifted_3)
    assert score.cell_f1 == 1 and score.mean_iou == pytest.approx(70 / 130)
    score = score_field(truth, shifted_4)
    assert score.cell_f1 == 0 and (score.cell_fp, score.cell_fn) == (1, 1)
    assert np.isnan(score.mean_iou) and np.isnan(score.count_mae)


def test_merged_cells_score_one_hit_and_one_miss():
    truth = field(square_labels((0, 10, 0, 6), (0, 10, 6, 10)))  # 60 px and 40 px
    merged = field(square_labels((0, 10, 0, 10)))
    score = score_field(truth, merged)
    assert (score.cell_tp, score.cell_fp, score.cell_fn) == (1, 0, 1)
    assert score.cell_f1 == pytest.approx(2 / 3)
    assert score.mean_iou == pytest.approx(0.6)
    assert score.cells.set_index("cell_id")["matched"].to_dict() == {1: True, 2: False}


def test_split_cell_scores_one_hit_and_one_false_positive():
    truth = field(square_labels((0, 10, 0, 10)))
    split = field(square_labels((0, 10, 0, 7), (0, 10, 7, 10)))
    score = score_field(truth, split)
    assert (score.cell_tp, score.cell_fp, score.cell_fn) == (1, 1, 0)
    assert score.cell_f1 == pytest.approx(2 / 3) and score.mean_iou == pytest.approx(0.7)


def test_types_and_counts_are_scored_on_matched_cells_only():
    truth = field(
        square_labels((0, 10, 0, 10), (10, 20, 0, 10), (0, 10, 20, 30)),
        types=["lymphocyte", "monocyte", "monocyte"],
        counts=[10, 4, 30],
    )
    pred = field(
        square_labels((0, 10, 0, 10), (10, 20, 0, 10)),  # third cell missed
        types=["lymphocyte", "lymphocyte"],
        counts=[13, 4],
    )
    score = score_field(truth, pred)
    assert score.type_accuracy == 0.5
    assert score.count_mae == 1.5  # |13 - 10| and |4 - 4|
    rows = score.cells.set_index("cell_id")
    assert rows.loc[1, "abs_error"] == 3 and np.isnan(rows.loc[3, "pred_count"])


def test_pnp_f1_counts_one_to_one_matches_within_tolerance():
    truth = field(square_labels(), pnps=[(2, 5, 5), (2, 5, 6), (2, 15, 15), (6, 1, 1)])
    pred = field(square_labels(), pnps=[(2, 5, 5.5), (4, 15, 17), (9, 1, 1), (2, 18, 28)])
    score = score_field(truth, pred)
    # (2,5,5.5) takes one of the two close true spots; (4,15,17) is 2 px / 2 slices away.
    assert (score.pnp_tp, score.pnp_fp, score.pnp_fn) == (2, 2, 2)
    assert score.pnp_f1 == pytest.approx(0.5)


def test_a_spot_of_multiplicity_two_stands_for_two_particles():
    truth = field(square_labels(), pnps=[(2, 5, 5), (2, 5, 6)])
    pred = field(square_labels(), pnps=[(2, 5, 5.5)])
    assert score_field(truth, pred).pnp_tp == 1
    pred.pnps["multiplicity"] = [2]
    score = score_field(truth, pred)
    assert (score.pnp_tp, score.pnp_fp, score.pnp_fn) == (2, 0, 0)


def test_empty_truth_and_prediction_score_one():
    nothing = empty_prediction((8, 8))
    score = score_field(nothing, nothing)
    assert score.cell_f1 == 1 and score.pnp_f1 == 1 and score.n_true_cells == 0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, n=3, seed=21, size=256)
    return root


def test_score_dataset_sums_images_and_counts_missing_results_as_misses(dataset, tmp_path):
    image_ids = sorted(p.name for p in (dataset / "truth").iterdir())
    results = tmp_path / "results"
    for image_id in image_ids[:2]:  # the third image has no result
        shutil.copytree(dataset / "truth" / image_id, results / image_id)
    truths = [read_field_tables(dataset / "truth" / i) for i in image_ids]
    n_cells = [len(t.cells) for t in truths]
    n_pnps = [len(t.pnps) for t in truths]

    score = score_dataset(dataset, results)
    assert score.missing == (image_ids[2],)
    assert (score.cell_tp, score.cell_fp, score.cell_fn) == (sum(n_cells[:2]), 0, n_cells[2])
    assert (score.pnp_tp, score.pnp_fn) == (sum(n_pnps[:2]), n_pnps[2])
    assert score.cell_f1 == pytest.approx(
        2 * sum(n_cells[:2]) / (2 * sum(n_cells[:2]) + n_cells[2])
    )
    assert score.mean_iou == 1 and score.count_mae == 0 and score.type_accuracy == 1
    assert len(score.cells) == sum(n_cells)
    assert score.cells["snr"].between(4, 20).all()
    assert [i for i, _ in score.fields] == image_ids
    same = score_dataset(dataset / "truth", results)  # the truth folder itself also works
    assert same.cell_tp == score.cell_tp
    assert score.summary()["cell_fn"] == n_cells[2]


def test_count_error_tables(dataset, tmp_path):
    results = tmp_path / "results"
    for folder in (dataset / "truth").iterdir():
        shutil.copytree(folder, results / folder.name)
        cells = pd.read_csv(results / folder.name / "cells.csv")
        cells["pnp_count"] += 2  # every count off by two
        cells.to_csv(results / folder.name / "cells.csv", index=False)
    score = score_dataset(dataset, results)
    by_snr = count_error_table(score, by="snr")
    assert list(by_snr.columns) == [
        "bin",
        "n_cells",
        "mae",
        "mean_true_count",
        "mean_sqrt_true_count",
    ]
    assert by_snr["n_cells"].sum() == score.cell_tp
    assert (by_snr.dropna()["mae"] == 2).all()
    edge = float(score.cells.true_count.median()) + 0.5
    by_count = count_error_table(score, by="true_count", bins=[0, edge, np.inf])
    assert by_count["bin"].tolist() == [f"[0.0, {edge})", f"[{edge}, inf)"]
    small = score.cells[score.cells.true_count < edge]
    assert len(small) > 0
    assert by_count.loc[0, "n_cells"] == len(small)
    assert by_count.loc[0, "mean_sqrt_true_count"] == pytest.approx(
        np.sqrt(small.true_count).mean()
    )
    with pytest.raises(ConfigError, match="'snr' or 'true_count'"):
        count_error_table(score, by="gain")
    with pytest.raises(ConfigError, match="no 'snr' column"):
        count_error_table(score.fields[0][1], by="snr")


def test_read_field_tables_reports_missing_files_and_columns(dataset, tmp_path):
    folder = tmp_path / "img"
    shutil.copytree(next((dataset / "truth").iterdir()), folder)
    (folder / "pnps.csv").write_text("z,y,x\n1,2,3\n")
    with pytest.raises(InvalidImageError, match=r"missing columns \['cell_id', 'intensity'\]"):
        read_field_tables(folder)
    (folder / "pnps.csv").unlink()
    with pytest.raises(ObjectNotFoundError, match="pnps.csv"):
        read_field_tables(folder)


def test_label_ids_need_not_be_consecutive_and_missing_rows_count_as_zero(caplog):
    truth = field(square_labels((0, 10, 0, 10), (10, 20, 0, 10)), counts=[5, 7])
    labels = np.zeros((20, 30), np.uint16)
    labels[0:10, 0:10] = 40
    labels[10:20, 0:10] = 900
    pred = FieldTruth(labels, truth.cells.iloc[:0], truth.pnps)  # no cell rows at all
    score = score_field(truth, pred)
    assert score.cell_tp == 2 and score.count_mae == 6.0  # |0 - 5| and |0 - 7|
    assert score.cells["pred_cell_id"].tolist() == [40, 900]
    assert "predicted cells [ 40 900] are in labels.tif but not in cells.csv" in caplog.text
