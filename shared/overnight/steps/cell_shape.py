"""Cell shapes that betray a segmentation error: elongation and a waist (touching cells merged).

The imaging model's cells are at most ~1.3:1; two touching round cells under one label are
~2.2:1 and pinched where they meet. Used by the QC flags (:mod:`overnight.steps.flags`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from overnight.lazy import lazy_module

if TYPE_CHECKING:  # the `analysis` extra, imported on first use (overnight.lazy)
    from scipy import ndimage as ndi
else:
    ndi = lazy_module("scipy.ndimage")

__all__ = ["aspect_ratios", "merged_cells_mask", "waist"]


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


def merged_cells_mask(
    labels: np.ndarray, ratios: np.ndarray, elongated_aspect: float, min_waist: float
) -> np.ndarray:
    """Per cell of a ``YX`` label image (ids ascending): does it look like touching cells merged.

    ``ratios`` is :func:`aspect_ratios` of ``labels``. A merged pair is long (over
    ``elongated_aspect``) and pinched where the two bodies meet (:func:`waist` at least
    ``min_waist``); only the elongated cells' profiles are measured.
    """
    labels = np.asarray(labels)
    merged = np.zeros(len(ratios), bool)
    long = np.flatnonzero(ratios > elongated_aspect)
    if not len(long):
        return merged
    ids = np.unique(labels[labels > 0])
    boxes = ndi.find_objects(labels)
    for i in long:
        box = boxes[int(ids[i]) - 1]
        merged[i] = box is not None and waist(labels[box] == ids[i]) >= min_waist
    return merged
