"""Accuracy of digital-cytometry results against ground truth (IMAGING_MODEL.md §1).

The metrics: cell F1 at IoU ≥ 0.5 (one-to-one), mean IoU of matched cells, cell-type accuracy
on matched cells, mean absolute error of ``pnp_count`` per matched cell, and PNP detection F1
(one-to-one within 2 px laterally and 2 slices axially; see :mod:`overnight.evaluation.matching`).
A dataset is scored by summing the true/false positives and negatives of its images, so each
cell and particle weighs the same whatever image it is in.

Conventions: an F1 with nothing to find and nothing found is 1.0; a mean over no matched
cells is NaN.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import tifffile

from overnight.errors import ConfigError, InvalidImageError, ObjectNotFoundError
from overnight.evaluation.matching import match_labels, match_points

logger = logging.getLogger(__name__)

CELL_COLUMNS = ("cell_id", "y", "x", "area_px", "cell_type", "pnp_count")
PNP_COLUMNS = ("z", "y", "x", "cell_id", "intensity")
MIN_IOU = 0.5
MAX_LATERAL_PX = 2.0
MAX_AXIAL_SLICES = 2.0
DEFAULT_SNR_BINS = (4.0, 6.0, 8.0, 10.0, 12.0, 16.0, np.inf)
DEFAULT_COUNT_BINS = (0.0, 1.0, 5.0, 10.0, 20.0, 40.0, 80.0, np.inf)


@dataclass(frozen=True)
class FieldTruth:
    """One image's cells and particles in the output format (truth or prediction).

    ``labels`` is ``YX`` (0 = background), ``cells`` and ``pnps`` hold at least
    :data:`CELL_COLUMNS` and :data:`PNP_COLUMNS` (coordinates in px and slices).
    """

    labels: np.ndarray
    cells: pd.DataFrame
    pnps: pd.DataFrame


@dataclass(frozen=True)
class Tallies:
    """Counts a score is made of; sums over images give the dataset's."""

    n_true_cells: int
    n_pred_cells: int
    cell_tp: int
    iou_sum: float
    type_correct: int
    count_abs_error_sum: float
    n_true_pnps: int
    n_pred_pnps: int
    pnp_tp: int

    @property
    def cell_fp(self) -> int:
        """Predicted cells matching no true cell."""
        return self.n_pred_cells - self.cell_tp

    @property
    def cell_fn(self) -> int:
        """True cells matching no predicted cell."""
        return self.n_true_cells - self.cell_tp

    @property
    def cell_f1(self) -> float:
        """Cell detection F1 at IoU ≥ 0.5."""
        return _f1(self.cell_tp, self.cell_fp, self.cell_fn)

    @property
    def mean_iou(self) -> float:
        """Mean IoU of matched cells."""
        return self.iou_sum / self.cell_tp if self.cell_tp else float("nan")

    @property
    def type_accuracy(self) -> float:
        """Fraction of matched cells given the true type."""
        return self.type_correct / self.cell_tp if self.cell_tp else float("nan")

    @property
    def count_mae(self) -> float:
        """Mean absolute error of ``pnp_count`` over matched cells."""
        return self.count_abs_error_sum / self.cell_tp if self.cell_tp else float("nan")

    @property
    def pnp_fp(self) -> int:
        """Predicted particles matching no true particle."""
        return self.n_pred_pnps - self.pnp_tp

    @property
    def pnp_fn(self) -> int:
        """True particles matching no predicted particle."""
        return self.n_true_pnps - self.pnp_tp

    @property
    def pnp_f1(self) -> float:
        """Particle detection F1 (2 px laterally, 2 slices axially)."""
        return _f1(self.pnp_tp, self.pnp_fp, self.pnp_fn)

    def summary(self) -> pd.Series:
        """Return the five metrics of the imaging model and the counts behind them."""
        return pd.Series(
            {
                "cell_f1": self.cell_f1,
                "mean_iou": self.mean_iou,
                "type_accuracy": self.type_accuracy,
                "count_mae": self.count_mae,
                "pnp_f1": self.pnp_f1,
                "cell_tp": self.cell_tp,
                "cell_fp": self.cell_fp,
                "cell_fn": self.cell_fn,
                "pnp_tp": self.pnp_tp,
                "pnp_fp": self.pnp_fp,
                "pnp_fn": self.pnp_fn,
            }
        )


@dataclass(frozen=True)
class FieldScore(Tallies):
    """Score of one image; ``cells`` has one row per true cell (see :func:`score_field`)."""

    cells: pd.DataFrame


@dataclass(frozen=True)
class DatasetScore(Tallies):
    """Score of a dataset: summed tallies, each image's score and every true cell's row.

    ``cells`` adds ``image_id`` and ``snr`` (the image's single-particle SNR, NaN when
    unknown) to the rows of :class:`FieldScore`; ``missing`` lists images without results.
    """

    fields: tuple[tuple[str, FieldScore], ...]
    cells: pd.DataFrame
    missing: tuple[str, ...]


def _f1(tp: int, fp: int, fn: int) -> float:
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def _read_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        raise ObjectNotFoundError(f"{path} does not exist")
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        table = pd.DataFrame(columns=list(columns))
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InvalidImageError(str(path), f"missing columns {missing}; has {list(table.columns)}")
    return table


def read_field_tables(folder: Path) -> FieldTruth:
    """Read ``labels.tif``, ``cells.csv`` and ``pnps.csv`` of one image's folder.

    Raises
    ------
    ObjectNotFoundError
        When a file is missing.
    InvalidImageError
        When the labels are not 2D or a table lacks a required column.
    """
    folder = Path(folder)
    labels_path = folder / "labels.tif"
    if not labels_path.is_file():
        raise ObjectNotFoundError(f"{labels_path} does not exist")
    labels = np.squeeze(tifffile.imread(labels_path))
    if labels.ndim != 2:
        raise InvalidImageError(
            str(labels_path), f"labels should be YX but have shape {labels.shape}"
        )
    return FieldTruth(
        labels=labels,
        cells=_read_csv(folder / "cells.csv", CELL_COLUMNS),
        pnps=_read_csv(folder / "pnps.csv", PNP_COLUMNS),
    )


def empty_prediction(shape_yx: tuple[int, ...]) -> FieldTruth:
    """Build a prediction with no cells and no particles (how a missing result scores)."""
    return FieldTruth(
        labels=np.zeros(shape_yx, np.uint32),
        cells=pd.DataFrame(columns=list(CELL_COLUMNS)),
        pnps=pd.DataFrame(columns=list(PNP_COLUMNS)),
    )


def _cell_rows(truth: FieldTruth, predicted: FieldTruth) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per true cell with its match; also the IoU of each match."""
    matches = match_labels(truth.labels, predicted.labels, MIN_IOU)
    true_ids = np.unique(truth.labels[truth.labels > 0]).astype(np.int64)
    true_cells = truth.cells.set_index("cell_id")
    pred_cells = predicted.cells.set_index("cell_id")
    for name, table, ids in (
        ("true", true_cells, true_ids),
        ("predicted", pred_cells, matches.pred_ids),
    ):
        absent = np.setdiff1d(ids, table.index.to_numpy(dtype=np.int64))
        if absent.size:
            logger.warning("%s cells %s are in labels.tif but not in cells.csv", name, absent[:10])
    pred_for = dict(zip(matches.true_ids.tolist(), matches.pred_ids.tolist(), strict=True))
    iou_for = dict(zip(matches.true_ids.tolist(), matches.iou.tolist(), strict=True))
    pred_ids = np.array([pred_for.get(i, 0) for i in true_ids.tolist()], np.int64)
    true_type = true_cells["cell_type"].reindex(true_ids)
    true_count = true_cells["pnp_count"].reindex(true_ids).astype(float)
    pred_type = pred_cells["cell_type"].reindex(pred_ids)
    pred_count = pred_cells["pnp_count"].reindex(pred_ids).astype(float)
    matched = pred_ids > 0
    pred_count = pred_count.where(~matched | pred_count.notna(), 0.0)  # matched but no row
    rows = pd.DataFrame(
        {
            "cell_id": true_ids,
            "cell_type": true_type.to_numpy(),
            "pred_cell_id": pred_ids,
            "iou": [iou_for.get(i, 0.0) for i in true_ids.tolist()],
            "pred_cell_type": pred_type.to_numpy(),
            "true_count": true_count.to_numpy(),
            "pred_count": np.where(matched, pred_count.to_numpy(), np.nan),
            "matched": matched,
        }
    )
    rows["abs_error"] = (rows["pred_count"] - rows["true_count"]).abs()
    return rows, matches.iou


def particle_positions(pnps: pd.DataFrame) -> np.ndarray:
    """``(N, 3)`` ``z, y, x`` of every particle: a row of ``multiplicity`` m stands for m."""
    points = pnps[["z", "y", "x"]].to_numpy(float).reshape(-1, 3)
    if "multiplicity" not in pnps:
        return points
    return np.repeat(points, pnps["multiplicity"].to_numpy(np.int64).clip(min=0), axis=0)


def score_field(truth: FieldTruth, predicted: FieldTruth) -> FieldScore:
    """Score one image's prediction against its truth.

    ``FieldScore.cells`` has one row per true cell: ``cell_id, cell_type, pred_cell_id``
    (0 = unmatched), ``iou, pred_cell_type, true_count, pred_count, matched, abs_error``.

    Raises
    ------
    InvalidImageError
        When the two label images differ in shape.
    """
    rows, iou = _cell_rows(truth, predicted)
    matched = rows[rows["matched"]]
    true_points = particle_positions(truth.pnps)
    pred_points = particle_positions(predicted.pnps)
    pnp_true_index, _ = match_points(true_points, pred_points, MAX_LATERAL_PX, MAX_AXIAL_SLICES)
    return FieldScore(
        n_true_cells=len(rows),
        n_pred_cells=int(np.unique(predicted.labels[predicted.labels > 0]).size),
        cell_tp=len(matched),
        iou_sum=float(iou.sum()),
        type_correct=int((matched["cell_type"] == matched["pred_cell_type"]).sum()),
        count_abs_error_sum=float(matched["abs_error"].fillna(0.0).sum()),
        n_true_pnps=len(true_points),
        n_pred_pnps=len(pred_points),
        pnp_tp=len(pnp_true_index),
        cells=rows,
    )


def _truth_folder(truth_root: Path) -> Path:
    """``truth_root/truth`` when it exists (a dataset from ``write_dataset``), else the root."""
    nested = truth_root / "truth"
    return nested if nested.is_dir() else truth_root


def _image_snr(folder: Path) -> float:
    params = folder / "params.json"
    if not params.is_file():
        return float("nan")
    return float(json.loads(params.read_text()).get("snr", float("nan")))


def score_dataset(truth_root: Path, results_root: Path) -> DatasetScore:
    """Score every image of a ground-truth dataset against ``results_root/<image_id>/``.

    Parameters
    ----------
    truth_root : Path
        A dataset folder from :func:`overnight.synth.write_dataset` (holding ``truth/``) or the
        ``truth`` folder itself: one sub-folder per image in the output format, with an
        optional ``params.json`` giving its SNR.
    results_root : Path
        One sub-folder per image in the output format. An image without one counts all its
        cells and particles as misses.
    """
    truth_dir = _truth_folder(Path(truth_root))
    image_dirs = sorted(p for p in truth_dir.iterdir() if (p / "labels.tif").is_file())
    fields, rows, missing = [], [], []
    for folder in image_dirs:
        truth = read_field_tables(folder)
        result_dir = Path(results_root) / folder.name
        if (result_dir / "labels.tif").is_file():
            predicted = read_field_tables(result_dir)
        else:
            missing.append(folder.name)
            predicted = empty_prediction(truth.labels.shape)
        score = score_field(truth, predicted)
        fields.append((folder.name, score))
        rows.append(score.cells.assign(image_id=folder.name, snr=_image_snr(folder)))
    if missing:
        logger.warning("%d of %d images have no results", len(missing), len(image_dirs))
    totals = {
        name: sum(getattr(s, name) for _, s in fields) for name in Tallies.__dataclass_fields__
    }
    cells = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return DatasetScore(**totals, fields=tuple(fields), cells=cells, missing=tuple(missing))


def count_error_table(
    score: FieldScore | DatasetScore,
    by: Literal["snr", "true_count"] = "snr",
    bins: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Count error of matched cells per bin of image SNR or of the true count.

    Returns one row per bin (``[low, high)``): ``bin, n_cells, mae, mean_true_count,
    mean_sqrt_true_count`` — the last is the Poisson noise of the count itself, the error an
    ideal counter would still show if specific binding were measured on one cell.

    Raises
    ------
    ConfigError
        For an unknown ``by``, or ``by="snr"`` on a score without SNR.
    """
    if by not in ("snr", "true_count"):
        raise ConfigError(f"count_error_table: by must be 'snr' or 'true_count', not {by!r}")
    if by not in score.cells.columns:
        raise ConfigError(f"count_error_table: this score has no {by!r} column (score a dataset)")
    edges = (
        list(bins)
        if bins is not None
        else list(DEFAULT_SNR_BINS if by == "snr" else DEFAULT_COUNT_BINS)
    )
    matched = score.cells[score.cells["matched"].astype(bool)]
    binned = pd.cut(matched[by].astype(float), edges, right=False)
    grouped = matched.assign(
        bin=binned, sqrt_true=np.sqrt(matched["true_count"].astype(float))
    ).groupby("bin", observed=False)
    table = pd.DataFrame(
        {
            "n_cells": grouped.size(),
            "mae": grouped["abs_error"].mean(),
            "mean_true_count": grouped["true_count"].mean(),
            "mean_sqrt_true_count": grouped["sqrt_true"].mean(),
        }
    )
    table.index = table.index.astype(str)
    return table.rename_axis("bin").reset_index()
