"""Dataset statistics: PNPs per cell against a Poisson law, and counts per sample/condition.

Non-specific binding puts particles on cells independently, so the count per cell is
Poisson: its variance equals its mean (variance/mean ratio, VMR, = 1). Specific binding
varies between cells and shows as excess: VMR > 1 and a histogram wider than the Poisson
probability mass function of the same mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from overnight.review.index import ImageRow
from overnight.review.table import natural_key

#: Name used for every cell, whatever its type.
ALL_CELLS = "all cells"
#: Columns of an annotation's ``cells.csv`` (the model's ``cells.csv`` without the extras).
CORRECTED_CELL_COLUMNS = ("cell_id", "y", "x", "area_px", "cell_type", "pnp_count")


@dataclass(frozen=True)
class CountHistogram:
    """PNP-per-cell counts of one cell type and the Poisson law of the same mean.

    ``counts[k]`` cells carry ``k`` PNPs (k = 0 .. len-1); ``poisson[k]`` is how many cells a
    Poisson law of mean ``mean`` predicts for ``k`` (n_cells × pmf).
    """

    cell_type: str
    n_cells: int
    mean: float
    var: float
    vmr: float
    counts: tuple[int, ...]
    poisson: tuple[float, ...]

    @property
    def excess(self) -> str:
        """A plain-words reading of the VMR for the page."""
        if math.isnan(self.vmr):
            return "not enough cells"
        if self.vmr < 1.5:
            return "close to Poisson (non-specific binding)"
        return "over-dispersed (specific binding or heterogeneous cells)"


def poisson_pmf(ks: np.ndarray, mean: float) -> np.ndarray:
    """Poisson probabilities P(K = k) of mean ``mean`` (> 0) for the counts ``ks`` (≥ 0).

    ``exp(k·ln(mean) − mean − ln k!)`` with ``ln k!`` from :func:`math.lgamma`: the QC web's
    image carries no SciPy (same values as ``scipy.stats.poisson.pmf`` to ~1e-12 relative).
    """
    k = np.asarray(ks, dtype=np.float64)
    log_factorial = np.array([math.lgamma(v + 1.0) for v in k.ravel()]).reshape(k.shape)
    return np.exp(k * math.log(mean) - mean - log_factorial)


def poisson_ppf(q: float, mean: float) -> int:
    """The smallest count k with P(K ≤ k) ≥ ``q`` for a Poisson law of mean ``mean`` (> 0).

    Sums :func:`poisson_pmf` up to ``mean + 40·√mean + 40``, past which the tail is below
    1e-300 for every ``q`` < 1 used here (as ``scipy.stats.poisson.ppf``).
    """
    top = int(math.ceil(mean + 40.0 * math.sqrt(mean) + 40.0))
    cdf = np.cumsum(poisson_pmf(np.arange(top + 1), mean))
    reached = np.nonzero(cdf >= q * (1.0 - 1e-12))[0]
    return int(reached[0]) if reached.size else top


def count_histogram(cell_type: str, pnp_counts: np.ndarray) -> CountHistogram:
    """Histogram of ``pnp_counts`` (one per cell) with the Poisson expectation of its mean."""
    counts = np.asarray(pnp_counts, dtype=np.int64)
    n = int(counts.size)
    mean = float(counts.mean()) if n else float("nan")
    var = float(counts.var(ddof=1)) if n > 1 else float("nan")
    vmr = var / mean if n > 1 and mean > 0 else float("nan")
    top = int(counts.max(initial=0))
    if n and mean > 0:
        top = max(top, poisson_ppf(0.999, mean))
    observed = np.bincount(counts, minlength=top + 1) if n else np.zeros(1, dtype=np.int64)
    ks = np.arange(observed.size)
    expected = n * poisson_pmf(ks, mean) if n and mean > 0 else np.zeros(observed.size)
    return CountHistogram(
        cell_type=cell_type,
        n_cells=n,
        mean=mean,
        var=var,
        vmr=vmr,
        counts=tuple(int(c) for c in observed),
        poisson=tuple(float(e) for e in expected),
    )


def histograms_by_type(
    cell_types: np.ndarray, pnp_counts: np.ndarray, type_names: Sequence[str]
) -> list[CountHistogram]:
    """One histogram per cell type (configured order, then any other type), then all cells."""
    present = list(dict.fromkeys([*type_names, *sorted(set(map(str, cell_types)))]))
    out = [
        count_histogram(t, pnp_counts[cell_types == t]) for t in present if (cell_types == t).any()
    ]
    out.append(count_histogram(ALL_CELLS, pnp_counts))
    return out


@dataclass(frozen=True)
class GroupStats:
    """Per-image values of one group of images (a sample, a drug, a condition)."""

    group: str
    n_images: int
    n_cells: int
    #: cell type → mean PNPs per cell of each image in the group (NaN-free).
    pnp_means: dict[str, tuple[float, ...]]
    #: cell type → cells counted in the group.
    cells_of_type: dict[str, int]


def group_stats(
    rows: Iterable[ImageRow], field: str, type_names: Sequence[str]
) -> list[GroupStats]:
    """Images grouped by metadata ``field`` (missing values as ``"(none)"``), naturally sorted."""
    groups: dict[str, list[ImageRow]] = {}
    for row in rows:
        groups.setdefault(row.metadata.get(field) or "(none)", []).append(row)
    out = []
    for name in sorted(groups, key=natural_key):
        members = groups[name]
        means = {}
        cells_of_type = {}
        for t in type_names:
            values = [r.summary.get(f"pnp_per_{t}_mean", float("nan")) for r in members]
            means[t] = tuple(v for v in values if not math.isnan(v))
            cells_of_type[t] = int(sum(r.summary.get(f"n_{t}", 0.0) for r in members))
        out.append(
            GroupStats(
                group=name,
                n_images=len(members),
                n_cells=int(sum(r.summary.get("n_cells", 0.0) for r in members)),
                pnp_means=means,
                cells_of_type=cells_of_type,
            )
        )
    return out


# -- corrected numbers: the same statistics over a reviewer's corrections ----------------------


def spot_cell_ids(labels: np.ndarray, spots: np.ndarray) -> np.ndarray:
    """The cell id under each spot's rounded centre (0 = on no cell), shape (N,), int64."""
    if not len(spots):
        return np.zeros(0, np.int64)
    rows = np.clip(np.rint(spots[:, 0]).astype(np.int64), 0, labels.shape[0] - 1)
    cols = np.clip(np.rint(spots[:, 1]).astype(np.int64), 0, labels.shape[1] - 1)
    return labels[rows, cols].astype(np.int64)


def corrected_cells_table(
    labels: np.ndarray, spots: np.ndarray, cell_types: Mapping[int, str]
) -> pd.DataFrame:
    """``cells.csv`` of an annotation: ``cell_id, y, x, area_px, cell_type, pnp_count``.

    ``y``, ``x`` are centroids (px); ``pnp_count`` sums the multiplicity of the spots whose
    rounded centre lies on the cell.
    """
    flat = labels.ravel().astype(np.int64)
    size = int(flat.max(initial=0)) + 1
    if size > 4 * flat.size + 16:  # sparse huge ids: compact them first (a sort)
        _, flat = np.unique(flat, return_inverse=True)
        size = int(flat.max(initial=0)) + 1
        present = np.unique(labels.ravel())
    else:
        present = np.arange(size)
    # per-id area and coordinate sums by bincount: one pass, no sort (2048² fields: ~0.1 s)
    area = np.bincount(flat, minlength=size)
    width = labels.shape[1]
    sum_y = np.bincount(flat, np.arange(flat.size) // width, size)
    sum_x = np.bincount(flat, np.arange(flat.size) % width, size)
    under = spot_cell_ids(labels, spots)
    count_of: dict[int, int] = {}
    for cell_id, multiplicity in zip(under.tolist(), spots[:, 2].tolist(), strict=True):
        count_of[cell_id] = count_of.get(cell_id, 0) + int(multiplicity)
    table = [
        {
            "cell_id": int(present[i]),
            "y": round(float(sum_y[i] / area[i]), 2),
            "x": round(float(sum_x[i] / area[i]), 2),
            "area_px": int(area[i]),
            "cell_type": cell_types.get(int(present[i]), ""),
            "pnp_count": count_of.get(int(present[i]), 0),
        }
        for i in np.nonzero(area)[0].tolist()
        if present[i] > 0
    ]
    return pd.DataFrame(table, columns=list(CORRECTED_CELL_COLUMNS))


def corrected_summary(cells: pd.DataFrame, spots: pd.DataFrame) -> dict[str, float]:
    """The image summary (``n_cells``, ``n_<type>``, ``n_pnps``, …) of a corrected image.

    ``cells`` is an annotation's ``cells.csv``, ``spots`` its ``spots.csv``; the keys are
    those of ``summary.csv`` so the image page shows both side by side.
    """
    counts = cells["pnp_count"].to_numpy(np.float64) if len(cells) else np.zeros(0)
    on_glass = spots.loc[spots["cell_id"] == 0, "multiplicity"] if len(spots) else []
    out: dict[str, float] = {
        "n_cells": float(len(cells)),
        "n_pnps": float(spots["multiplicity"].sum()) if len(spots) else 0.0,
        "n_pnps_on_glass": float(np.sum(on_glass)),
        "pnp_per_cell_mean": float(counts.mean()) if len(counts) else float("nan"),
        "pnp_per_cell_vmr": count_histogram(ALL_CELLS, counts.astype(np.int64)).vmr,
    }
    for name, group in cells.groupby(cells["cell_type"].fillna("").astype(str)):
        if name:
            type_counts = group["pnp_count"].to_numpy(np.int64)
            out[f"n_{name}"] = float(len(group))
            out[f"pnps_{name}"] = float(type_counts.sum())
            out[f"pnp_per_{name}_mean"] = float(type_counts.mean())
            out[f"pnp_per_{name}_vmr"] = count_histogram(str(name), type_counts).vmr
    return out
