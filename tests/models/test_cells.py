"""Cell model pieces: training classes, watershed from probabilities, type classifier."""

from __future__ import annotations

import numpy as np

from overnight.models.cells import BOUNDARY, INTERIOR, cell_classes, instance_labels
from overnight.models.celltypes import TypeClassifier, cell_features, fit_classifier
from overnight.models.config import CellModelConfig


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
    assert ids.tolist() == list(range(1, 9)) and x.shape == (8, 6)
    classifier = fit_classifier(x, np.array(truth), ("small", "big"))
    names, confidence = classifier.predict(x)
    assert names == ("small", "big") * 4 and (confidence > 0.5).all()
    classifier.save(tmp_path)
    again = TypeClassifier.load(tmp_path)
    assert again is not None
    np.testing.assert_allclose(again.probabilities(x), classifier.probabilities(x))
