"""One-to-one matching of predicted to true objects: cell masks by IoU, particles by distance.

Cells: the IoU of every overlapping (true, predicted) label pair comes from one contingency
table of the two label images (``np.unique`` on paired ids). Pairs with IoU ≥ ``min_iou`` are
matched greedily by decreasing IoU; for ``min_iou`` ≥ 0.5 that is the optimal one-to-one
matching, because two pairs sharing a label can only both reach 0.5 in a tie.

Particles: candidate pairs within ``max_lateral_px`` in ``y, x`` and ``max_axial_slices`` in
``z`` come from a k-d tree; each connected group of candidates is then solved exactly with
``scipy.optimize.linear_sum_assignment``, which gives the most matches and, among those, the
smallest total distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from overnight.errors import InvalidImageError

#: Cost of a forbidden pair in the assignment; above any sum of allowed distances.
_FORBIDDEN = 1e9


@dataclass(frozen=True)
class LabelOverlaps:
    """Every overlapping (true, predicted) label pair with its intersection and union (px)."""

    true_ids: np.ndarray
    pred_ids: np.ndarray
    intersection_px: np.ndarray
    union_px: np.ndarray

    @property
    def iou(self) -> np.ndarray:
        """Intersection over union of each pair."""
        return self.intersection_px / np.maximum(self.union_px, 1)


@dataclass(frozen=True)
class LabelMatches:
    """Matched label pairs (one-to-one) and their IoU."""

    true_ids: np.ndarray
    pred_ids: np.ndarray
    iou: np.ndarray


def label_overlaps(truth: np.ndarray, predicted: np.ndarray) -> LabelOverlaps:
    """Contingency table of two ``YX`` label images (0 = background), overlapping pairs only.

    Raises
    ------
    InvalidImageError
        When the two images differ in shape.

    Examples
    --------
    >>> t = np.array([[1, 1, 0], [2, 2, 0]])
    >>> p = np.array([[5, 5, 5], [5, 0, 0]])
    >>> o = label_overlaps(t, p)
    >>> o.true_ids.tolist(), o.pred_ids.tolist(), o.iou.round(2).tolist()
    ([1, 2], [5, 5], [0.5, 0.2])
    """
    if truth.shape != predicted.shape:
        raise InvalidImageError(
            "predicted labels",
            f"truth and prediction should have the same shape but are {truth.shape} and "
            f"{predicted.shape}",
        )
    t = truth.ravel().astype(np.int64)
    p = predicted.ravel().astype(np.int64)
    true_area = dict(zip(*np.unique(t[t > 0], return_counts=True), strict=True))
    pred_area = dict(zip(*np.unique(p[p > 0], return_counts=True), strict=True))
    both = (t > 0) & (p > 0)
    stride = int(p.max(initial=0)) + 1
    keys, counts = np.unique(t[both] * stride + p[both], return_counts=True)
    true_ids, pred_ids = keys // stride, keys % stride
    union = (
        np.array(
            [true_area[a] + pred_area[b] for a, b in zip(true_ids, pred_ids, strict=True)], np.int64
        ).reshape(-1)
        - counts
    )
    return LabelOverlaps(true_ids, pred_ids, counts.astype(np.int64), union)


def match_labels(truth: np.ndarray, predicted: np.ndarray, min_iou: float = 0.5) -> LabelMatches:
    """Match true to predicted cells one-to-one where IoU ≥ ``min_iou``.

    Examples
    --------
    >>> t = np.array([[1, 1, 0, 2, 2]])
    >>> p = np.array([[3, 3, 3, 0, 4]])
    >>> m = match_labels(t, p)
    >>> m.true_ids.tolist(), m.pred_ids.tolist(), m.iou.round(2).tolist()
    ([1, 2], [3, 4], [0.67, 0.5])
    """
    overlaps = label_overlaps(truth, predicted)
    iou = overlaps.iou
    order = np.argsort(-iou, kind="stable")
    order = order[iou[order] >= min_iou]
    used_true: set[int] = set()
    used_pred: set[int] = set()
    kept = []
    for k in order:
        a, b = int(overlaps.true_ids[k]), int(overlaps.pred_ids[k])
        if a not in used_true and b not in used_pred:
            used_true.add(a)
            used_pred.add(b)
            kept.append(k)
    index = np.array(kept, dtype=np.int64)
    return LabelMatches(overlaps.true_ids[index], overlaps.pred_ids[index], iou[index])


def match_points(
    truth_zyx: np.ndarray,
    pred_zyx: np.ndarray,
    max_lateral_px: float = 2.0,
    max_axial_slices: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Match true to predicted points one-to-one within a lateral and an axial tolerance.

    Parameters
    ----------
    truth_zyx, pred_zyx : ndarray of shape (N, 3) and (M, 3)
        Point centres (slice, px, px).
    max_lateral_px : float
        Largest distance in ``y, x`` (px) of a match.
    max_axial_slices : float
        Largest distance in ``z`` (slices) of a match.

    Returns
    -------
    true_index, pred_index : ndarray of int
        Row indices of the matched pairs: the most matches possible, then the smallest total
        distance.

    Examples
    --------
    >>> t = np.array([[0.0, 10, 10], [0.0, 11, 10]])
    >>> p = np.array([[0.0, 10.5, 10], [3.0, 20, 20]])
    >>> [i.tolist() for i in match_points(t, p)]
    [[0], [0]]
    """
    truth_zyx = np.asarray(truth_zyx, float).reshape(-1, 3)
    pred_zyx = np.asarray(pred_zyx, float).reshape(-1, 3)
    if len(truth_zyx) == 0 or len(pred_zyx) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    radius = float(np.hypot(max_lateral_px, max_axial_slices))
    pairs = cKDTree(truth_zyx).sparse_distance_matrix(
        cKDTree(pred_zyx), radius, output_type="ndarray"
    )
    ti, pi = pairs["i"].astype(np.int64), pairs["j"].astype(np.int64)
    delta = truth_zyx[ti] - pred_zyx[pi]
    allowed = (np.hypot(delta[:, 1], delta[:, 2]) <= max_lateral_px) & (
        np.abs(delta[:, 0]) <= max_axial_slices
    )
    ti, pi, distance = ti[allowed], pi[allowed], pairs["v"][allowed]
    return _assign_groups(ti, pi, distance, len(truth_zyx), len(pred_zyx))


def _assign_groups(
    ti: np.ndarray, pi: np.ndarray, distance: np.ndarray, n_true: int, n_pred: int
) -> tuple[np.ndarray, np.ndarray]:
    """Solve the assignment of each connected group of candidate pairs separately."""
    if len(ti) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    graph = sparse.coo_matrix(
        (np.ones(len(ti)), (ti, n_true + pi)), shape=(n_true + n_pred, n_true + n_pred)
    )
    _, group = connected_components(graph, directed=False)
    pair_group = group[ti]
    true_per_group = np.bincount(group[:n_true], minlength=group.max() + 1)
    pred_per_group = np.bincount(group[n_true:], minlength=group.max() + 1)
    simple = (true_per_group[pair_group] == 1) & (pred_per_group[pair_group] == 1)
    out_true, out_pred = [ti[simple]], [pi[simple]]
    for g in np.unique(pair_group[~simple]):
        member = pair_group == g
        rows, row_index = np.unique(ti[member], return_inverse=True)
        cols, col_index = np.unique(pi[member], return_inverse=True)
        cost = np.full((len(rows), len(cols)), _FORBIDDEN)
        cost[row_index, col_index] = distance[member]
        r, c = linear_sum_assignment(cost)
        ok = cost[r, c] < _FORBIDDEN
        out_true.append(rows[r[ok]])
        out_pred.append(cols[c[ok]])
    return np.concatenate(out_true), np.concatenate(out_pred)
