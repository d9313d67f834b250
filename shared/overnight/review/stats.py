"""Dataset statistics: PNPs per cell against a Poisson law, and counts per sample/condition.

Non-specific binding puts particles on cells independently, so the count per cell is
Poisson: its variance equals its mean (variance/mean ratio, VMR, = 1). Specific binding
varies between cells and shows as excess: VMR > 1 and a histogram wider than the Poisson
probability mass function of the same mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from overnight.review.index import ImageRow
from overnight.review.table import natural_key

#: Name used for every cell, whatever its type.
ALL_CELLS = "all cells"


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


def count_histogram(cell_type: str, pnp_counts: np.ndarray) -> CountHistogram:
    """Histogram of ``pnp_counts`` (one per cell) with the Poisson expectation of its mean."""
    counts = np.asarray(pnp_counts, dtype=np.int64)
    n = int(counts.size)
    mean = float(counts.mean()) if n else float("nan")
    var = float(counts.var(ddof=1)) if n > 1 else float("nan")
    vmr = var / mean if n > 1 and mean > 0 else float("nan")
    top = int(counts.max(initial=0))
    if n and mean > 0:
        top = max(top, int(scipy_stats.poisson.ppf(0.999, mean)))
    observed = np.bincount(counts, minlength=top + 1) if n else np.zeros(1, dtype=np.int64)
    ks = np.arange(observed.size)
    expected = n * scipy_stats.poisson.pmf(ks, mean) if n and mean > 0 else np.zeros(observed.size)
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
