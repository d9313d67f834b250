"""Assign particles to cells and count them per cell (digital cytometry)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from overnight.steps.pnp import Spots


@dataclass(frozen=True)
class ParticleCounts:
    """Which cell each spot belongs to (0 = none) and the particle count of every cell.

    ``counts[i]`` is the number of particles (spot multiplicities summed) on ``cell_ids[i]``.
    """

    spot_cell_ids: np.ndarray
    cell_ids: np.ndarray
    counts: np.ndarray

    def as_dict(self) -> dict[int, int]:
        """Cell id → particle count."""
        return {int(i): int(c) for i, c in zip(self.cell_ids, self.counts, strict=True)}


def assign_particles(labels: np.ndarray, spots: Spots, margin_px: float = 2.0) -> ParticleCounts:
    """Give each spot the cell under it, or the nearest cell within ``margin_px`` of it.

    ``labels`` is ``YX`` (0 = background). Particles sit on the membrane, so a spot just
    outside a mask edge (blur, sub-pixel position) still belongs to that cell; farther away
    it is on the glass (cell id 0). Every spot gets exactly one cell id or 0.
    """
    cell_ids = np.unique(labels)
    cell_ids = cell_ids[cell_ids > 0].astype(np.int64)
    if len(spots) == 0:
        return ParticleCounts(
            np.zeros(0, dtype=np.int64), cell_ids, np.zeros(len(cell_ids), dtype=np.int64)
        )
    ny, nx = labels.shape
    yi = np.clip(np.rint(spots.y).astype(np.int64), 0, ny - 1)
    xi = np.clip(np.rint(spots.x).astype(np.int64), 0, nx - 1)
    distance, (near_y, near_x) = ndi.distance_transform_edt(labels == 0, return_indices=True)
    nearest = labels[near_y[yi, xi], near_x[yi, xi]].astype(np.int64)
    spot_ids = np.where(distance[yi, xi] <= margin_px, nearest, 0)
    if not cell_ids.size:
        spot_ids[:] = 0
    counts = np.zeros(len(cell_ids), dtype=np.int64)
    if cell_ids.size:
        index = np.searchsorted(cell_ids, spot_ids)
        on_cell = spot_ids > 0
        np.add.at(counts, index[on_cell], spots.multiplicity[on_cell])
    return ParticleCounts(spot_ids, cell_ids, counts)
