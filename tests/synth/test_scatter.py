from __future__ import annotations

import numpy as np
import pytest

from overnight.synth.scatter import ScatterLook, edge_distance_px, render_scatter, sharp_scatter

LOOK = ScatterLook(
    rim_contrast=2.0,
    rim_width_px=0.8,
    rim_inset_px=1.5,
    texture_strength=0.1,
    texture_scale_px=2.0,
    focus_blur_px=0.7,
    defocus_blur_px_per_slice=1.5,
)


def two_touching_discs():
    yy, xx = np.mgrid[:80, :120]
    left = np.hypot(yy - 40, xx - 40) <= 20
    right = np.hypot(yy - 40, xx - 76) <= 20
    labels = np.zeros((80, 120), np.uint32)
    labels[left] = 1
    labels[right & (xx >= 58)] = 2  # shared boundary between columns 57 and 58
    labels[left & (xx < 58)] = 1
    return labels


def test_edge_distance_on_a_literal_row():
    labels = np.zeros((11, 9), np.uint32)
    labels[1:-1] = [0, 1, 1, 1, 1, 1, 2, 2, 0]  # tall cells: the middle row sees x distances
    edge, owner = edge_distance_px(labels)
    assert edge[5].tolist() == [-0.5, 0.5, 1.5, 2.5, 1.5, 0.5, 0.5, 0.5, -0.5]
    assert owner[5].tolist() == [1, 1, 1, 1, 1, 1, 2, 2, 2]


def test_rim_peaks_inside_the_mask_edge_and_touching_boundary_is_darker():
    labels = two_touching_discs()
    signal, _ = sharp_scatter(np.random.default_rng(0), labels, np.array([0.0, 100.0, 100.0]), LOOK)
    edge, _ = edge_distance_px(labels)
    by_depth = {d: signal[(labels > 0) & (np.abs(edge - d) < 0.3)].mean() for d in (0.5, 1.5, 5.5)}
    assert by_depth[1.5] > by_depth[5.5] * 1.5  # bright rim over the body
    assert by_depth[1.5] > by_depth[0.5]  # peak is inside the mask edge
    assert signal[labels == 0].max() < 20  # dark background
    seam = signal[35:46, 57:59].mean()  # boundary pixels of the two cells
    rims = signal[35:46, [55, 60]].mean()
    assert seam < rims


def test_blur_grows_away_from_each_cells_focal_plane():
    labels = two_touching_discs()
    stack = render_scatter(
        np.random.default_rng(0),
        labels,
        np.array([0.0, 100.0, 100.0]),
        np.array([2.0, 2.0, 6.0]),
        9,
        LOOK,
    )
    assert stack.shape == (9, 80, 120) and stack.dtype == np.float32
    sharpness = np.abs(np.diff(stack, axis=2))
    left_cell = sharpness[:, :, 10:55].max(axis=(1, 2))
    right_cell = sharpness[:, :, 62:110].max(axis=(1, 2))
    assert np.argmax(left_cell) == 2 and np.argmax(right_cell) == 6
    assert left_cell[2] > 3 * left_cell[8]
    assert stack.sum(axis=(1, 2)) == pytest.approx(stack[2].sum(), rel=0.02)  # blur keeps light
