"""The per-particle table agrees with the per-cell counts."""

import numpy as np

from overnight.steps.counting import assign_particles
from overnight.steps.pnp import Spots
from overnight.steps.tables import pnp_table

LABELS = np.zeros((10, 10), np.uint32)
LABELS[1:5, 1:5] = 1
LABELS[6:9, 6:9] = 2


def test_particle_rows_sum_to_each_cells_count_and_empty_spots_are_dropped():
    spots = Spots(
        z=np.zeros(4),
        y=np.array([2.0, 3.0, 7.0, 7.5]),
        x=np.array([2.0, 3.0, 7.0, 7.5]),
        intensity=np.full(4, 10.0),
        multiplicity=np.array([1, 1, 1, 0]),
        expected=np.array([0.3, 0.4, 1.6, 0.2]),
    )
    counts = assign_particles(LABELS, spots, margin_px=0)
    table = pnp_table(spots, counts)
    assert counts.as_dict() == {1: 1, 2: 2}
    assert table.groupby("cell_id")["multiplicity"].sum().to_dict() == {1: 1, 2: 2}
    assert (table["multiplicity"] > 0).all() and len(table) == 2
