from __future__ import annotations

import numpy as np
import pytest

from overnight.synth.cells import CellOutline, layout_cells, touching_ids
from overnight.synth.noise import camera_adu
from overnight.synth.particles import glass_particles, render_spots
from overnight.synth.ranges import LYMPHOCYTE


def test_spot_peak_is_its_amplitude_and_volume_is_gaussian():
    spots = render_spots((9, 40, 40), np.array([[4.0, 20.0, 20.0]]), np.array([100.0]), 1.2, 1.3)
    assert spots.max() == pytest.approx(100.0) and spots[4, 20, 20] == pytest.approx(100.0)
    expected = 100.0 * (2 * np.pi) ** 1.5 * 1.2**2 * 1.3
    assert spots.sum() == pytest.approx(expected, rel=0.01)


def test_spots_add_up_and_clip_at_the_field_edge():
    points = np.array([[1.0, 0.2, 0.3], [1.0, 0.2, 0.3], [1.5, 9.7, 9.9]])
    spots = render_spots((3, 10, 10), points, np.array([10.0, 10.0, 5.0]), 1.0, 1.0)
    assert spots[1, 0, 0] == pytest.approx(20 * np.exp(-(0.04 + 0.09) / 2), rel=1e-5)
    assert spots.shape == (3, 10, 10)


def test_glass_particles_keep_their_distance():
    labels = np.zeros((64, 64), np.uint32)
    labels[20:40, 20:40] = 1
    points = glass_particles(np.random.default_rng(0), labels, 50, 2.0, 6.0)
    assert len(points) == 50
    iy, ix = np.rint(points[:, 1]).astype(int), np.rint(points[:, 2]).astype(int)
    gap_y = np.maximum(np.maximum(20 - iy, iy - 39), 0)
    gap_x = np.maximum(np.maximum(20 - ix, ix - 39), 0)
    assert (np.hypot(gap_y, gap_x) >= 6).all()


def test_camera_noise_has_poisson_and_read_noise_variance():
    signal = np.full((300, 300), 40.0, np.float32)
    frame = camera_adu(np.random.default_rng(0), signal, 100.0, 1.5, 4.0).astype(float)
    assert frame.mean() == pytest.approx(140.0, abs=0.1)
    assert frame.var() == pytest.approx(1.5 * 40 + 4.0**2 + 1 / 12, rel=0.03)
    dark = camera_adu(np.random.default_rng(0), np.zeros((300, 300)), 100.0, 1.5, 4.0)
    assert dark.astype(float).std() == pytest.approx(4.0, rel=0.03)


def test_outline_radius_and_touching_pairs():
    round_cell = CellOutline("lymphocyte", (0.0, 0.0), 10.0, 1.0, 0.0, ((0.0, 0.0),) * 4)
    assert round_cell.radius_at(np.linspace(-3, 3, 7)) == pytest.approx(np.full(7, 10.0))
    long_cell = CellOutline("monocyte", (0.0, 0.0), 10.0, 1.21, 0.0, ((0.0, 0.0),) * 4)
    assert long_cell.radius_at(np.array([0.0, np.pi / 2])) == pytest.approx([11.0, 10 / 1.1])
    labels = np.array([[1, 1, 0, 2], [3, 3, 0, 2], [0, 0, 0, 0]])
    assert touching_ids(labels).tolist() == [1, 3]


def test_layout_places_the_touching_fraction_asked_for():
    rng = np.random.default_rng(1)
    fractions = []
    for _ in range(4):
        layout = layout_cells(rng, (512, 512), 24, [LYMPHOCYTE], 0.5, 3.0)
        fractions.append(len(touching_ids(layout.labels)) / len(layout.outlines))
    assert 0.35 < np.mean(fractions) < 0.65
    none = layout_cells(rng, (512, 512), 20, [LYMPHOCYTE], 0.0, 3.0)
    assert len(touching_ids(none.labels)) == 0
