"""Assign particles to cells and count them per cell (digital cytometry)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from overnight.lazy import lazy_module
from overnight.steps.pnp import Spots

if TYPE_CHECKING:  # the `analysis` extra, imported on first use (overnight.lazy)
    from scipy import ndimage as ndi
else:
    ndi = lazy_module("scipy.ndimage")


@dataclass(frozen=True)
class ParticleCounts:
    """Which cell each spot belongs to (0 = none) and the particle count of every cell.

    ``counts[i]`` is the number of particles on ``cell_ids[i]``: the sum of its spots'
    ``spot_multiplicity``, the spots' multiplicities as settled by counting.
    """

    spot_cell_ids: np.ndarray
    cell_ids: np.ndarray
    counts: np.ndarray
    spot_multiplicity: np.ndarray

    def as_dict(self) -> dict[int, int]:
        """Cell id → particle count."""
        return {int(i): int(c) for i, c in zip(self.cell_ids, self.counts, strict=True)}


def settle_multiplicities(
    spot_cell_ids: np.ndarray, multiplicity: np.ndarray, expected: np.ndarray
) -> np.ndarray:
    """Integer multiplicities whose sum per cell is that cell's rounded expected count.

    Each cell's count is ``rint(sum(expected))``: summing expectations lets the errors of
    single spots cancel, where rounding each spot first adds them up. The spots that gain or
    lose a particle are those whose ``expected - multiplicity`` is largest or smallest
    (largest-remainder apportionment). Spots on no cell (id 0) keep their multiplicity.
    """
    settled = np.asarray(multiplicity, np.int64).copy()
    expected = np.asarray(expected, np.float64)
    for cell_id in np.unique(spot_cell_ids[spot_cell_ids > 0]):
        rows = np.flatnonzero(spot_cell_ids == cell_id)
        change = int(np.rint(expected[rows].sum())) - int(settled[rows].sum())
        remainder = expected[rows] - settled[rows]
        if change > 0:  # the most under-counted spots gain one each (cycling if need be)
            order = rows[np.argsort(-remainder, kind="stable")]
            np.add.at(settled, order[np.arange(change) % len(order)], 1)
        while change < 0:  # the most over-counted spots that still hold a particle lose one
            holding = rows[settled[rows] > 0]
            worst = holding[np.argmin(expected[holding] - settled[holding])]
            settled[worst] -= 1
            change += 1
    return settled


def assign_particles(labels: np.ndarray, spots: Spots, margin_px: float = 2.0) -> ParticleCounts:
    """Give each spot the cell under it, or the nearest cell within ``margin_px`` of it.

    ``labels`` is ``YX`` (0 = background). Particles sit on the membrane, so a spot just
    outside a mask edge (blur, sub-pixel position) still belongs to that cell; farther away
    it is on the glass (cell id 0). Every spot gets exactly one cell id or 0. When the spots
    carry ``expected`` particle numbers, each cell's count is their rounded sum
    (:func:`settle_multiplicities`); otherwise it is the sum of the multiplicities.
    """
    cell_ids = np.unique(labels)
    cell_ids = cell_ids[cell_ids > 0].astype(np.int64)
    if len(spots) == 0:
        none = np.zeros(0, dtype=np.int64)
        return ParticleCounts(none, cell_ids, np.zeros(len(cell_ids), dtype=np.int64), none)
    ny, nx = labels.shape
    yi = np.clip(np.rint(spots.y).astype(np.int64), 0, ny - 1)
    xi = np.clip(np.rint(spots.x).astype(np.int64), 0, nx - 1)
    distance, (near_y, near_x) = ndi.distance_transform_edt(labels == 0, return_indices=True)
    nearest = labels[near_y[yi, xi], near_x[yi, xi]].astype(np.int64)
    spot_ids = np.where(distance[yi, xi] <= margin_px, nearest, 0)
    if not cell_ids.size:
        spot_ids[:] = 0
    multiplicity = np.asarray(spots.multiplicity, np.int64)
    if spots.expected is not None:
        multiplicity = settle_multiplicities(spot_ids, multiplicity, spots.expected)
    counts = np.zeros(len(cell_ids), dtype=np.int64)
    if cell_ids.size:
        index = np.searchsorted(cell_ids, spot_ids)
        on_cell = spot_ids > 0
        np.add.at(counts, index[on_cell], multiplicity[on_cell])
    return ParticleCounts(spot_ids, cell_ids, counts, multiplicity)
