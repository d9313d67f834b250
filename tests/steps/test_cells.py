"""Classical cell segmentation on drawn discs, including two that touch."""

import numpy as np
from skimage.draw import disk

from overnight.steps.cells import cell_foreground, focus_projection, split_touching_cells
from overnight.steps.classify import classify_by_size


def two_touching_discs():
    image = np.full((120, 160), 100.0)
    image[disk((60, 50), 22)] = 400
    image[disk((60, 93), 22)] = 400  # centres 43 px apart: the discs overlap slightly
    image[disk((25, 135), 15)] = 400
    return image


def test_touching_cells_are_split():
    image = two_touching_discs()
    labels = split_touching_cells(cell_foreground(image), min_distance_px=12)
    assert labels.dtype == np.uint32
    assert labels.max() == 3
    assert labels[60, 50] != labels[60, 93]


def test_focus_projection_picks_the_sharp_slice():
    sharp = two_touching_discs()
    blurred = np.full_like(sharp, sharp.mean())
    projected = focus_projection(np.stack([blurred, sharp, blurred]))
    # inside a disc and just outside its edge the sharp slice wins
    assert np.allclose(projected[60, 50], 400) and np.allclose(projected[60, 118], 100)


def test_size_rule_types_cells():
    labels = np.zeros((200, 200), np.uint32)
    labels[disk((50, 50), 18)] = 1  # 36 px ≈ 7.2 µm at 0.2 µm/px
    labels[disk((130, 130), 32)] = 2  # 64 px ≈ 12.8 µm
    types = classify_by_size(labels, pixel_size_um=0.2)
    assert types.as_dict() == {1: "lymphocyte", 2: "monocyte"}
    assert (types.confidence > 0.9).all()


def test_relabel_sequential_numbers_as_skimage_does():
    from skimage.segmentation import relabel_sequential as skimage_relabel

    from overnight.steps.cells import relabel_sequential

    labels = np.random.default_rng(2).choice([0, 3, 7, 40, 41, 900], size=(30, 20))
    expected = skimage_relabel(labels.astype(np.int64))[0].astype(np.uint32)
    got = relabel_sequential(labels.astype(np.int32))
    assert got.dtype == np.uint32
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(relabel_sequential(np.zeros((3, 3), np.int32)), 0)
