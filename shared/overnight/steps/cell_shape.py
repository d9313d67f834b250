"""Cell shape signals of a segmentation: elongation, waists, and cells merged under one label.

Touching cells that a segmentation merges under one label leave a long cell pinched where the
two bodies meet; the QC flags (:mod:`overnight.steps.flags`) count such cells. Each function
takes a ``YX`` label image (cell ids > 0) and answers per cell in ascending id order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from overnight.lazy import lazy_module

if TYPE_CHECKING:  # the `analysis` extra, imported on first use (overnight.lazy)
    from scipy import ndimage as ndi
else:
    ndi = lazy_module("scipy.ndimage")


def aspect_ratios(labels: np.ndarray) -> np.ndarray:
    """Per cell of a ``YX`` label image (ids ascending): its long over its short axis.

    The axes of the ellipse with the cell's second moments (1 for a disk, √5 ≈ 2.2 for two equal
    disks that touch).

    >>> labels = np.zeros((9, 20), np.uint32); labels[2:7, 2:7] = 1; labels[2:5, 9:19] = 2
    >>> np.round(aspect_ratios(labels), 1)
    array([1. , 3.5])
    """
    flat = np.asarray(labels).ravel()
    ids = np.unique(flat[flat > 0])
    if not len(ids):
        return np.zeros(0)
    y, x = (a.ravel().astype(np.float64) for a in np.indices(labels.shape))

    def per_cell(values: np.ndarray) -> np.ndarray:
        return np.bincount(flat, weights=values, minlength=int(ids[-1]) + 1)[ids]

    n = per_cell(np.ones_like(y))
    my, mx = per_cell(y) / n, per_cell(x) / n
    var_y, var_x = per_cell(y * y) / n - my**2, per_cell(x * x) / n - mx**2
    cov = per_cell(x * y) / n - mx * my
    half_spread = np.sqrt(np.maximum((var_y - var_x) ** 2 / 4 + cov**2, 0.0))
    long_var = (var_y + var_x) / 2 + half_spread
    short_var = np.maximum((var_y + var_x) / 2 - half_spread, 1e-6)
    return np.asarray(np.sqrt(long_var / short_var))


def waist(mask: np.ndarray, smooth_px: float = 1.5) -> float:
    """How pinched a ``YX`` mask is along its long axis: 0 = no waist, 1 = cut in two.

    The mask's width profile along its long axis (pixels per 1-px step, smoothed by
    ``smooth_px``); the deepest dip below the lower of the widest points on either side, as a
    share of that width. Two touching disks under one label have a deep waist where they meet;
    convex shapes (an oval cell, a cell cut by the field's edge, half of a cell split in two)
    have none.

    >>> yy, xx = np.mgrid[:40, :70]
    >>> pair = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 144) | ((yy - 20) ** 2 + (xx - 44) ** 2 <= 144)
    >>> round(waist(pair), 1), waist(((yy - 20) / 12.0) ** 2 + ((xx - 35) / 30.0) ** 2 <= 1)
    (0.6, 0.0)
    """
    yy, xx = np.nonzero(mask)
    if len(yy) < 3:
        return 0.0
    y, x = yy - yy.mean(), xx - xx.mean()
    _, axes = np.linalg.eigh(np.cov(np.stack([y, x])))
    along = y * axes[0, -1] + x * axes[1, -1]
    width = np.bincount(np.round(along - along.min()).astype(np.intp)).astype(np.float64)
    width = np.asarray(ndi.gaussian_filter1d(width, smooth_px))
    if len(width) < 3:
        return 0.0
    # the widest point on each side of every step, and the lower of the two
    rim = np.minimum(np.maximum.accumulate(width), np.maximum.accumulate(width[::-1])[::-1])
    dip = 1.0 - width[1:-1] / np.maximum(rim[1:-1], 1e-12)
    return float(max(dip.max(), 0.0))


def clear_of_edge(labels: np.ndarray) -> np.ndarray:
    """Per cell of a ``YX`` label image (ids ascending): is it clear of the field's edge.

    A cell with a pixel on the image's border is cut by the edge: its outline there is the
    field's, not the cell's.

    >>> clear_of_edge(np.array([[1, 0, 0], [0, 2, 0], [0, 0, 0]], np.uint32)).tolist()
    [False, True]
    """
    labels = np.asarray(labels)
    ids = np.unique(labels[labels > 0])
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return ~np.isin(ids, border)


def merged_cells_mask(
    labels: np.ndarray, ratios: np.ndarray, elongated_aspect: float, min_waist: float
) -> np.ndarray:
    """Per cell of a ``YX`` label image (ids ascending): does it look like touching cells merged.

    ``ratios`` is :func:`aspect_ratios` of ``labels``. A merged pair is long (over
    ``elongated_aspect``) and pinched where the two bodies meet (:func:`waist` at least
    ``min_waist``). A cell cut by the field's edge (:func:`clear_of_edge`) never counts: the
    cut, or a neighbour cut beside it, leaves long pinched shapes that are no merge. Only the
    elongated cells' profiles are measured.

    >>> labels = np.zeros((16, 48), np.uint32)
    >>> labels[4:12, 1:9] = 1; labels[4:12, 38:46] = 2  # two square cells
    >>> labels[4:12, 12:20] = labels[6:10, 20:22] = labels[4:12, 22:30] = 3  # two, pinched
    >>> merged_cells_mask(labels, aspect_ratios(labels), 1.8, 0.08).tolist()
    [False, False, True]
    >>> at_edge = labels[:, 12:]  # the field cut just left of the pair: it touches the edge
    >>> merged_cells_mask(at_edge, aspect_ratios(at_edge), 1.8, 0.08).tolist()
    [False, False]
    """
    labels = np.asarray(labels)
    merged = np.zeros(len(ratios), bool)
    long = np.flatnonzero(ratios > elongated_aspect)
    if not len(long):
        return merged
    ids = np.unique(labels[labels > 0])
    boxes = ndi.find_objects(labels)
    for i in long[clear_of_edge(labels)[long]]:
        box = boxes[int(ids[i]) - 1]
        merged[i] = box is not None and waist(labels[box] == ids[i]) >= min_waist
    return merged


def merged_signals(
    labels: np.ndarray, ratios: np.ndarray, elongated_aspect: float, min_waist: float
) -> dict[str, float]:
    """The merged-cell signals of a ``YX`` label image (:func:`merged_cells_mask`).

    ``merged_fraction``: share of the cells clear of the field's edge that look merged (0 when
    none is clear of it); ``merged_count``: how many; ``merged_max_area``: the largest one's
    area over the median cell's (all cells; 0 when none is merged): a merge of two cells holds
    about two cells' area, one odd-shaped cell about one.

    >>> labels = np.zeros((16, 48), np.uint32)
    >>> labels[4:12, 1:9] = 1; labels[4:12, 38:46] = 2  # two square cells (64 px)
    >>> labels[4:12, 12:20] = labels[6:10, 20:22] = labels[4:12, 22:30] = 3  # 136 px, pinched
    >>> merged_signals(labels, aspect_ratios(labels), 1.8, 0.08)
    {'merged_fraction': 0.3333333333333333, 'merged_count': 1.0, 'merged_max_area': 2.125}
    """
    labels = np.asarray(labels)
    ids, areas = np.unique(labels[labels > 0], return_counts=True)
    merged = merged_cells_mask(labels, ratios, elongated_aspect, min_waist)
    clear = int(np.count_nonzero(clear_of_edge(labels))) if len(ids) else 0
    largest = float(areas[merged].max() / np.median(areas)) if merged.any() else 0.0
    return {
        "merged_fraction": float(merged.sum()) / clear if clear else 0.0,
        "merged_count": float(merged.sum()),
        "merged_max_area": largest,
    }
