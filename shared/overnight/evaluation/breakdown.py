"""Accuracy broken down by what a field was drawn with: brightness, SNR, look, size.

:func:`field_table` turns a :class:`~overnight.evaluation.cytometry.DatasetScore` into one row
per image (its tallies, its metrics and the generator's ``params.json`` values), and
:func:`metrics_by_bin` sums those tallies per bin of any column, so that a reader sees where a
pipeline breaks (e.g. cell F1 per band of body brightness), not only its average.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from overnight.evaluation.cytometry import DatasetScore, Tallies

TALLY_COLUMNS = tuple(Tallies.__dataclass_fields__)
METRICS = ("cell_f1", "mean_iou", "type_accuracy", "count_mae", "pnp_f1")


def _params(truth_root: Path, image_id: str) -> dict[str, object]:
    for folder in (truth_root / "truth" / image_id, truth_root / image_id):
        path = folder / "params.json"
        if path.is_file():
            return dict(json.loads(path.read_text()))
    return {}


def _metrics(tallies: Tallies) -> dict[str, float]:
    return {name: float(getattr(tallies, name)) for name in METRICS}


def field_table(score: DatasetScore, truth_root: Path | None = None) -> pd.DataFrame:
    """One row per image: ``image_id``, tallies, the five metrics and its ``params.json``."""
    rows = []
    for image_id, field in score.fields:
        row: dict[str, object] = {"image_id": image_id}
        row.update({name: getattr(field, name) for name in TALLY_COLUMNS})
        row.update(_metrics(field))
        if truth_root is not None:
            row.update({f"param_{k}": v for k, v in _params(Path(truth_root), image_id).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def metrics_by_bin(fields: pd.DataFrame, column: str, edges: Sequence[float]) -> pd.DataFrame:
    """The five metrics per bin ``[low, high)`` of ``column``, from summed per-image tallies.

    Returns one row per bin: ``bin, n_images, n_true_cells`` and the metrics (NaN where a bin
    has no matched cells for a mean).
    """
    binned = pd.cut(fields[column].astype(float), list(edges), right=False)
    rows = []
    for interval, group in fields.groupby(binned, observed=False):
        sums = {name: group[name].sum() for name in TALLY_COLUMNS}
        counts: dict[str, Any] = {
            k: (float(v) if k == "iou_sum" else int(v)) for k, v in sums.items()
        }
        tallies = Tallies(**counts)
        row: dict[str, object] = {
            "bin": str(interval),
            "n_images": len(group),
            "n_true_cells": int(sums["n_true_cells"]),
        }
        row.update(_metrics(tallies) if len(group) else dict.fromkeys(METRICS, np.nan))
        rows.append(row)
    return pd.DataFrame(rows)
