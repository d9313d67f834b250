"""Cell model pieces: training classes, watershed from probabilities, type classifier."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import morphology

from overnight.models.cells import (
    BOUNDARY,
    DIHEDRAL,
    INTERIOR,
    CellModel,
    cell_classes,
    dihedral,
    h_maxima_of_parts,
    instance_labels,
    undo_dihedral,
)
from overnight.models.celltypes import TypeClassifier, cell_features, fit_classifier
from overnight.models.config import CellModelConfig, UNetConfig


def _two_touching_cells() -> np.ndarray:
    labels = np.zeros((40, 60), np.uint32)
    yy, xx = np.mgrid[:40, :60]
    labels[(yy - 20) ** 2 + (xx - 18) ** 2 < 14**2] = 1
    labels[((yy - 20) ** 2 + (xx - 42) ** 2 < 14**2) & (xx >= 30)] = 2
    return labels


def test_boundary_class_runs_along_every_edge_including_shared_ones() -> None:
    labels = _two_touching_cells()
    classes = cell_classes(labels, 2)
    assert set(np.unique(classes)) == {0, 1, 2}
    assert (classes[20, 28:32] == BOUNDARY).all()  # the shared edge at x = 29/30, 2 px each side
    assert classes[20, 18] == INTERIOR and classes[0, 0] == 0
    assert not ((classes > 0) ^ (labels > 0)).any()


def test_watershed_separates_touching_cells_from_ideal_probabilities() -> None:
    labels = _two_touching_cells()
    probs = np.eye(3, dtype=np.float32)[cell_classes(labels, 2)]
    predicted = instance_labels(probs, CellModelConfig(min_cell_px=10, min_marker_px=5))
    assert predicted.max() == 2
    for cell in (1, 2):
        overlap = np.bincount(predicted[labels == cell])
        assert overlap.argmax() > 0 and overlap.max() / (labels == cell).sum() > 0.95


def test_empty_probabilities_give_no_cells() -> None:
    probs = np.zeros((32, 32, 3), np.float32)
    probs[..., 0] = 1.0
    assert instance_labels(probs, CellModelConfig()).max() == 0


def test_undo_dihedral_inverts_each_of_the_eight_transforms() -> None:
    image = np.arange(6 * 10 * 2, dtype=np.float32).reshape(6, 10, 2)
    seen = set()
    for rotations, flip in DIHEDRAL:
        moved = dihedral(image, rotations, flip)
        seen.add(moved.tobytes())
        np.testing.assert_array_equal(undo_dihedral(moved, rotations, flip), image)
    assert len(seen) == 8  # eight distinct transforms


def _tiny_cell_model(tta: bool) -> CellModel:
    import keras

    from overnight.models.unet import build_unet

    keras.utils.set_random_seed(0)
    unet = UNetConfig(ndim=2, in_channels=1, out_channels=3, n_levels=2, base_filters=4)
    config = CellModelConfig(unet=unet, tta=tta, tile_px=64, tile_overlap_px=16)
    return CellModel(config, build_unet(unet), None)


def test_tta_averages_into_an_equivariant_prediction() -> None:
    image = np.random.default_rng(0).uniform(0, 1, (24, 40)).astype(np.float32)
    plain_model = _tiny_cell_model(tta=False)
    model = CellModel(
        plain_model.config.model_copy(update={"tta": True}), plain_model.network, None
    )
    probs, features = model.probabilities(image)
    plain, plain_features = plain_model.probabilities(image)
    assert probs.shape == plain.shape == (24, 40, 3)
    assert features.shape == plain_features.shape
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
    # The group mean commutes with every transform of the input; an untrained network alone
    # does not, so a wrong inverse transform (or none) fails here.
    for rotations, flip in DIHEDRAL[1:]:
        moved = dihedral(image, rotations, flip)
        expected = dihedral(probs, rotations, flip)
        np.testing.assert_allclose(model.probabilities(moved)[0], expected, atol=1e-5)
    rotated = dihedral(image, 1, False)
    assert np.abs(plain_model.probabilities(rotated)[0] - dihedral(plain, 1, False)).max() > 1e-4


def test_tta_of_a_symmetric_image_is_symmetric_and_off_by_default() -> None:
    yy, xx = np.mgrid[:32, :32] - 15.5
    image = np.exp(-(yy**2 + xx**2) / 50.0).astype(np.float32)  # symmetric under all 8
    plain_model = _tiny_cell_model(tta=False)
    assert not CellModelConfig().tta
    model = CellModel(
        plain_model.config.model_copy(update={"tta": True}), plain_model.network, None
    )
    probs = model.probabilities(image)[0]
    for rotations, flip in DIHEDRAL:
        np.testing.assert_allclose(dihedral(probs, rotations, flip), probs, atol=1e-5)
    plain = plain_model.probabilities(image)[0]
    np.testing.assert_allclose(plain, plain_model._tiled(image)[0])


def test_classifier_learns_size_and_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    labels = np.zeros((200, 400), np.uint32)
    yy, xx = np.mgrid[:200, :400]
    truth = []
    for i, (cy, cx) in enumerate(
        [(50, 50), (50, 150), (50, 250), (50, 350), (150, 50), (150, 150), (150, 250), (150, 350)]
    ):
        radius = 10 + rng.uniform(0, 3) if i % 2 == 0 else 30 + rng.uniform(0, 5)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = i + 1
        truth.append(i % 2)
    ids, x = cell_features(labels, np.zeros((200, 400, 2), np.float32), 0.2)
    assert ids.tolist() == list(range(1, 9)) and x.shape == (8, 7)  # 5 shape + 2 network
    classifier = fit_classifier(x, np.array(truth), ("small", "big"))
    names, confidence = classifier.predict(x)
    assert names == ("small", "big") * 4 and (confidence > 0.5).all()
    classifier.save(tmp_path)
    again = TypeClassifier.load(tmp_path)
    assert again is not None
    np.testing.assert_allclose(again.probabilities(x), classifier.probabilities(x))


def test_fitted_diameter_keeps_the_size_of_a_cell_cut_by_the_edge() -> None:
    from overnight.models.celltypes import fitted_diameter_px

    yy, xx = np.mgrid[:100, :100]
    whole = (yy - 50) ** 2 + (xx - 50) ** 2 < 30**2
    cut = (yy - 50) ** 2 + (xx + 8) ** 2 < 30**2  # a disk centred 8 px beyond the left edge
    assert fitted_diameter_px(whole, (0, 0), whole.shape) == pytest.approx(60, abs=2)
    assert fitted_diameter_px(cut, (0, 0), cut.shape) == pytest.approx(60, abs=3)
    assert 2 * np.sqrt(cut.sum() / np.pi) < 40  # its area alone would call it small


def test_shape_only_features_ignore_the_network() -> None:
    labels = np.zeros((40, 40), np.uint32)
    labels[5:20, 5:20] = 1
    ids, x = cell_features(labels, None, 0.2)
    assert ids.tolist() == [1] and x.shape == (1, 5)


def test_objects_the_network_half_sees_are_dropped() -> None:
    probs = np.zeros((60, 60, 3), np.float32)
    probs[..., 0] = 1.0
    for (y, x), p_cell in (((15, 15), 0.98), ((45, 45), 0.6)):  # a clear cell, a faint blob
        yy, xx = np.mgrid[:60, :60]
        disk = (yy - y) ** 2 + (xx - x) ** 2 < 10**2
        probs[disk] = (1 - p_cell, p_cell, 0.0)
    keep_all = CellModelConfig(min_mean_foreground=0.0, seed_h_px=1.0)
    assert len(np.unique(instance_labels(probs, keep_all))) == 3
    strict = keep_all.model_copy(update={"min_mean_foreground": 0.78})
    labels = instance_labels(probs, strict)
    assert np.unique(labels).tolist() == [0, 1] and labels[15, 15] == 1


def test_h_maxima_of_parts_equals_skimage() -> None:
    """Per part of the distance map, the same maxima as the whole-image reconstruction."""
    rng = np.random.default_rng(6)
    ring = np.zeros((40, 40), bool)
    ring[5:35, 5:35] = True
    ring[9:31, 9:31] = False
    ring[15:25, 15:25] = True  # a part inside another's hole
    images = [ndi.distance_transform_edt(ring), np.zeros((9, 9))]
    for trial in range(60):
        shape = tuple(int(n) for n in rng.integers(5, 70, 2))
        blobs = ndi.gaussian_filter(rng.random(shape), rng.uniform(1, 4)) > rng.uniform(0.45, 0.6)
        distance = ndi.distance_transform_edt(blobs)  # parts touch the edges, some are low
        if trial % 2:
            distance = ndi.gaussian_filter(distance, rng.uniform(0.5, 2.5))
        images.append(np.round(distance) if trial % 5 == 0 else distance)  # plateaus too
    for image in images:
        for h in (0.5, 2.0, 4.5, 6.0):
            expected = morphology.h_maxima(image, h)
            got = h_maxima_of_parts(image, h)
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)


def test_drop_cells_as_before() -> None:
    """The lookup-table drop gives the labels of the former isin / relabel_sequential one."""
    from skimage.segmentation import relabel_sequential as skimage_relabel

    from overnight.models.cells import drop_cells

    rng = np.random.default_rng(4)
    labels = ndi.label(ndi.gaussian_filter(rng.random((80, 90)), 2) > 0.52)[0]
    probabilities = rng.dirichlet((2.0, 1.0, 1.0), size=labels.shape)
    config = CellModelConfig(min_cell_px=30, min_mean_foreground=0.45)
    expected = labels.copy()
    sizes = np.bincount(expected.ravel())
    small = np.flatnonzero(sizes < config.min_cell_px)
    expected[np.isin(expected, small[small > 0])] = 0
    ids = np.unique(expected[expected > 0])
    confidence = ndi.mean(1.0 - probabilities[..., 0], expected, ids)
    expected[np.isin(expected, ids[np.asarray(confidence) < config.min_mean_foreground])] = 0
    expected = skimage_relabel(expected.astype(np.int64))[0].astype(np.uint32)
    assert 0 < expected.max() < labels.max()  # some cells dropped, some kept
    np.testing.assert_array_equal(drop_cells(labels, probabilities, config), expected)
