from __future__ import annotations

import numpy as np
import pytest

from overnight.errors import InvalidImageError
from overnight.evaluation.matching import label_overlaps, match_labels, match_points


def test_overlaps_of_a_tiny_literal_pair():
    truth = np.array(
        [
            [1, 1, 0, 0],
            [1, 1, 0, 2],
            [0, 0, 0, 2],
        ]
    )
    pred = np.array(
        [
            [7, 7, 7, 0],
            [7, 7, 0, 0],
            [0, 0, 0, 3],
        ]
    )
    o = label_overlaps(truth, pred)
    assert o.true_ids.tolist() == [1, 2]
    assert o.pred_ids.tolist() == [7, 3]
    assert o.intersection_px.tolist() == [4, 1]
    assert o.union_px.tolist() == [5, 2]
    assert o.iou.tolist() == [0.8, 0.5]


def test_match_keeps_iou_of_one_half_and_drops_below():
    truth = np.array([[1, 1, 0, 2, 2, 2]])
    pred = np.array([[5, 5, 0, 6, 0, 0]])
    m = match_labels(truth, pred)
    assert m.true_ids.tolist() == [1] and m.pred_ids.tolist() == [5]  # 2↔6 has IoU 1/3
    truth = np.array([[1, 1, 0]])
    pred = np.array([[4, 0, 0]])
    assert match_labels(truth, pred).iou.tolist() == [0.5]


def test_match_is_one_to_one_in_a_tie():
    truth = np.array([[1, 1, 2, 2]])
    pred = np.array([[9, 9, 9, 9]])  # IoU 0.5 with both true cells
    m = match_labels(truth, pred)
    assert len(m.true_ids) == 1 and m.pred_ids.tolist() == [9]


def test_shape_mismatch_is_reported():
    with pytest.raises(InvalidImageError, match=r"\(2, 2\) and \(2, 3\)"):
        label_overlaps(np.zeros((2, 2), int), np.zeros((2, 3), int))


@pytest.mark.parametrize(
    ("pred", "matched"),
    [
        ([2.0, 10.0, 12.0], True),  # exactly 2 px laterally
        ([2.0, 11.5, 11.5], False),  # 2.12 px laterally
        ([2.0, 10.0, 12.1], False),
        ([4.0, 10.0, 10.0], True),  # exactly 2 slices axially
        ([4.1, 10.0, 10.0], False),
        ([3.9, 11.4, 11.4], True),  # 1.98 px and 1.9 slices: the tolerance is not a sphere
    ],
)
def test_points_match_within_2_px_laterally_and_2_slices_axially(pred, matched):
    t, p = match_points(np.array([[2.0, 10.0, 10.0]]), np.array([pred]))
    assert (len(t) == 1) is matched


def test_points_match_one_to_one_and_maximise_matches():
    # Greedy nearest would pair B with P (0.5 px) and leave A and Q apart (2.9 px).
    truth = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.5]])  # A, B
    pred = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 2.9]])  # P, Q
    t, p = match_points(truth, pred)
    assert sorted(zip(t.tolist(), p.tolist(), strict=True)) == [(0, 0), (1, 1)]
    t, p = match_points(truth, pred[:1])
    assert len(t) == 1  # two true points, one prediction: one match


def test_points_with_nothing_to_match():
    assert [len(a) for a in match_points(np.zeros((0, 3)), np.ones((3, 3)))] == [0, 0]
    assert [len(a) for a in match_points(np.ones((3, 3)), np.zeros((0, 3)))] == [0, 0]


def test_many_points_match_fast_and_exactly():
    rng = np.random.default_rng(0)
    truth = np.column_stack([rng.uniform(0, 10, 20000), rng.uniform(0, 2048, (20000, 2))])
    pred = truth + rng.normal(0, 0.7, truth.shape)
    t, p = match_points(truth, pred)
    assert len(set(t.tolist())) == len(t) and len(set(p.tolist())) == len(p)
    delta = truth[t] - pred[p]
    assert (np.hypot(delta[:, 1], delta[:, 2]) <= 2).all() and (np.abs(delta[:, 0]) <= 2).all()
    assert len(t) > 0.97 * len(truth)
