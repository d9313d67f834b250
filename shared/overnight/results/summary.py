"""Per-image and per-dataset summaries: counts, and whether binding looks Poissonian.

Non-specific binding should be Poisson noise, so the variance/mean ratio (VMR) of PNPs
per cell is ~1; specific binding shows as excess (VMR > 1, a higher mean).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd


def count_stats(counts: np.ndarray) -> dict[str, float]:
    """Mean, variance (ddof 1) and variance/mean ratio of per-cell counts (NaN if undefined)."""
    counts = np.asarray(counts, dtype=float)
    mean = float(counts.mean()) if counts.size else float("nan")
    var = float(counts.var(ddof=1)) if counts.size > 1 else float("nan")
    vmr = var / mean if counts.size > 1 and mean > 0 else float("nan")
    return {"mean": mean, "var": var, "vmr": vmr}


def image_summary(
    cells: pd.DataFrame, pnps: pd.DataFrame, type_names: Iterable[str]
) -> dict[str, Any]:
    """One image's row: ``n_cells``, ``n_pnps``, on-glass PNPs, per-type count statistics."""
    row: dict[str, Any] = {
        "n_cells": int(len(cells)),
        "n_pnps": int(pnps["multiplicity"].sum()) if "multiplicity" in pnps else int(len(pnps)),
        "n_pnps_on_glass": int((pnps["cell_id"] == 0).sum()),
    }
    for key, value in count_stats(cells["pnp_count"].to_numpy()).items():
        row[f"pnp_per_cell_{key}"] = _round(value)
    for name in type_names:
        counts = cells.loc[cells["cell_type"] == name, "pnp_count"].to_numpy()
        row[f"n_{name}"] = int(counts.size)
        for key, value in count_stats(counts).items():
            row[f"pnp_per_{name}_{key}"] = _round(value)
    return row


def summary_table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The dataset's ``summary.csv``: one row per image, metadata columns first."""
    table = pd.DataFrame(list(rows))
    if table.empty:
        return table
    return table.sort_values("image_id").reset_index(drop=True)


def _round(value: float) -> float:
    return float("nan") if np.isnan(value) else round(value, 4)


#: First characters that make a spreadsheet read a cell as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every text cell that a spreadsheet would run as a formula quoted.

    A text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (metadata
    from file names, folders and sidecars: ``=HYPERLINK(...)``) gets a leading ``'``, which
    spreadsheets show but do not evaluate. Numbers, also negative ones, are left alone.

    >>> table = pd.DataFrame({"drug": ["=1+1", "rux", "-3", "@x"], "n": [1, 2, 3, -4]})
    >>> spreadsheet_safe(table).drug.tolist()
    ["'=1+1", 'rux', '-3', "'@x"]
    """
    safe = table.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(_quoted)
    return safe


def _quoted(value: Any) -> Any:
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    try:
        float(value)
    except ValueError:
        return f"'{value}"
    return value
