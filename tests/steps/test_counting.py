"""Assigning particles to cells: tiny literal cases and the one-owner invariant."""

import numpy as np

from overnight.steps.counting import assign_particles
from overnight.steps.pnp import Spots


def spots(yx, multiplicity=None):
    yx = np.asarray(yx, dtype=float).reshape(-1, 2)
    n = len(yx)
    m = np.ones(n, np.int64) if multiplicity is None else np.asarray(multiplicity)
    return Spots(z=np.zeros(n), y=yx[:, 0], x=yx[:, 1], intensity=np.ones(n), multiplicity=m)


LABELS = np.array(
    [
        [0, 0, 0, 0, 0, 0, 0, 0],
        [0, 1, 1, 0, 0, 0, 0, 0],
        [0, 1, 1, 0, 0, 2, 2, 0],
        [0, 0, 0, 0, 0, 2, 2, 0],
        [0, 0, 0, 0, 0, 0, 0, 0],
    ],
    dtype=np.uint32,
)


def test_spot_inside_a_cell_counts_for_it():
    counts = assign_particles(LABELS, spots([[1, 1], [2, 2], [2, 5]]), margin_px=0)
    assert counts.spot_cell_ids.tolist() == [1, 1, 2]
    assert counts.as_dict() == {1: 2, 2: 1}


def test_margin_decides_between_cell_and_glass():
    s = spots([[2, 3.4], [4, 0]])  # 1 px right of cell 1; far from both at the corner
    assert assign_particles(LABELS, s, margin_px=1.5).spot_cell_ids.tolist() == [1, 0]
    assert assign_particles(LABELS, s, margin_px=0.5).spot_cell_ids.tolist() == [0, 0]


def test_multiplicity_adds_particles():
    counts = assign_particles(LABELS, spots([[1, 1], [3, 6]], multiplicity=[2, 3]), margin_px=0)
    assert counts.as_dict() == {1: 2, 2: 3}


def test_no_cells_means_every_spot_on_glass():
    counts = assign_particles(np.zeros((4, 4), np.uint32), spots([[1, 1]]), margin_px=5)
    assert counts.spot_cell_ids.tolist() == [0]
    assert counts.cell_ids.size == 0


def test_every_particle_has_exactly_one_owner():
    rng = np.random.default_rng(0)
    labels = np.kron(rng.integers(0, 4, (8, 8)), np.ones((6, 6), int)).astype(np.uint32)
    s = spots(rng.uniform(0, 47, (300, 2)), multiplicity=rng.integers(1, 3, 300))
    counts = assign_particles(labels, s, margin_px=1.0)
    on_cells = counts.spot_cell_ids > 0
    assert counts.counts.sum() == s.multiplicity[on_cells].sum()
    assert set(counts.spot_cell_ids[on_cells]) <= set(counts.cell_ids.tolist())


def expected_spots(yx, multiplicity, expected):
    s = spots(yx, multiplicity)
    return Spots(s.z, s.y, s.x, s.intensity, s.multiplicity, np.asarray(expected, float))


def test_a_cells_count_is_its_rounded_expected_sum():
    # three doubtful spots on cell 1 (1.8 expected → 2), a bright pair-like spot on cell 2
    s = expected_spots(
        [[1, 1], [1, 2], [2, 1], [2, 5], [3, 6]], [1, 1, 1, 1, 1], [0.7, 0.5, 0.6, 1.4, 1.3]
    )
    counts = assign_particles(LABELS, s, margin_px=0)
    assert counts.as_dict() == {1: 2, 2: 3}
    assert counts.spot_multiplicity.tolist() == [1, 0, 1, 2, 1]


def test_glass_spots_keep_their_multiplicity():
    s = expected_spots([[4, 0], [1, 1]], [1, 0], [0.4, 0.6])
    counts = assign_particles(LABELS, s, margin_px=0.5)
    assert counts.spot_cell_ids.tolist() == [0, 1]
    assert counts.spot_multiplicity.tolist() == [1, 1]


def test_settled_multiplicities_sum_to_every_cells_count():
    rng = np.random.default_rng(1)
    labels = np.kron(rng.integers(0, 4, (8, 8)), np.ones((6, 6), int)).astype(np.uint32)
    expected = rng.gamma(2.0, 0.5, 300)
    s = expected_spots(rng.uniform(0, 47, (300, 2)), np.rint(expected).astype(np.int64), expected)
    counts = assign_particles(labels, s, margin_px=1.0)
    assert (counts.spot_multiplicity >= 0).all()
    for cell_id, count in counts.as_dict().items():
        on_cell = counts.spot_cell_ids == cell_id
        assert count == counts.spot_multiplicity[on_cell].sum()
        assert count == round(expected[on_cell].sum())
