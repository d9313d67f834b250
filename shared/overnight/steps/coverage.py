"""Where the cells are by a cheap classical route, to check a segmentation against it.

A network that meets a field unlike its training data drops faint cells or invents cells in
noise. A smoothed threshold over a fitted background finds cells in the same fields (dim
bodies are large enough to stand out once smoothed), so where the two disagree the network's
cells are doubtful. Both functions work on the cell projection (``YX``, ADU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from overnight.lazy import lazy_module

if TYPE_CHECKING:  # the `analysis` extra, imported on first use (overnight.lazy)
    from scipy import ndimage as ndi
else:
    ndi = lazy_module("scipy.ndimage")

#: Robust σ of a normal distribution from its median absolute deviation.
_MAD_TO_SIGMA = 1.4826


def background_level(
    image: np.ndarray, mask: np.ndarray, scale_px: float = 24.0, step_px: int = 8
) -> np.ndarray:
    """Smooth background (ADU) under a ``YX`` image, fitted to the pixels where ``mask`` holds.

    At every point of a grid ``step_px`` coarser, a plane is fitted to the masked pixels
    around it, weighted by a Gaussian of ``scale_px`` (a local linear regression, so ramps are
    followed exactly, up to the field's edges); the plane's value there, interpolated back to
    full size (held constant over the outer half block), is the background. It follows ramps,
    vignetting and haze wider than ``scale_px`` and fills the holes the mask leaves (cells)
    from their surroundings.

    >>> ramp = np.add.outer(np.linspace(0.0, 30.0, 64), np.linspace(100.0, 164.0, 64))
    >>> mask = np.ones((64, 64), bool); mask[20:40, 20:40] = False
    >>> level = background_level(ramp + 50.0 * ~mask, mask)
    >>> bool(np.abs(level - ramp)[4:-4, 4:-4].max() < 0.5)
    True
    """
    image = np.asarray(image, np.float64)
    weight, coarse = _block_means(image, np.asarray(mask, bool), step_px)
    sigma = scale_px / step_px
    y, x = (a.astype(np.float64) for a in np.mgrid[: coarse.shape[0], : coarse.shape[1]])

    def smooth(values: np.ndarray) -> np.ndarray:
        return np.asarray(ndi.gaussian_filter(values, sigma, mode="constant"))

    # weighted moments about each grid point of the mask (m_*) and of the masked image (t_*)
    s0, sy, sx = smooth(weight), smooth(weight * y), smooth(weight * x)
    m_yy = smooth(weight * y * y) - 2 * y * sy + y * y * s0
    m_xx = smooth(weight * x * x) - 2 * x * sx + x * x * s0
    m_xy = smooth(weight * x * y) - x * sy - y * sx + x * y * s0
    m_y, m_x = sy - y * s0, sx - x * s0
    t0 = smooth(weight * coarse)
    t_y = smooth(weight * coarse * y) - y * t0
    t_x = smooth(weight * coarse * x) - x * t0
    # a small ridge on the slopes: where few pixels remain the fit falls back to their mean
    ridge = 1e-3 * sigma**2 * np.maximum(s0, 1e-6)
    normal = np.stack(
        [
            np.stack([s0 + 1e-9, m_y, m_x], -1),
            np.stack([m_y, m_yy + ridge, m_xy], -1),
            np.stack([m_x, m_xy, m_xx + ridge], -1),
        ],
        -2,
    )
    rhs = np.stack([t0, t_y, t_x], -1)[..., None]
    level = np.linalg.solve(normal, rhs)[..., 0, 0]
    if not (s0 > 1e-3).all():  # far from every masked pixel: their median
        level = np.where(
            s0 > 1e-3, level, float(np.median(coarse[weight > 0] if weight.any() else coarse))
        )
    level = _upsample(level.astype(np.float32), step_px, image.shape[0], axis=0)
    return _upsample(level, step_px, image.shape[1], axis=1)


def _upsample(values: np.ndarray, step_px: int, n_px: int, axis: int) -> np.ndarray:
    """Linear interpolation along ``axis`` from block centres to ``n_px`` pixels (ends held)."""
    n_blocks = values.shape[axis]
    where = np.clip((np.arange(n_px) + 0.5) / step_px - 0.5, 0.0, n_blocks - 1.0)
    low = np.minimum(where.astype(np.intp), max(n_blocks - 2, 0))
    high = np.minimum(low + 1, n_blocks - 1)
    frac = (where - low).astype(np.float32)
    shape = [1, 1]
    shape[axis] = n_px
    frac = frac.reshape(shape)
    lower, upper = np.take(values, low, axis=axis), np.take(values, high, axis=axis)
    return np.asarray(lower + frac * (upper - lower), np.float32)


def distance_to_cells(labels: np.ndarray) -> np.ndarray:
    """City-block distance (px) from every pixel of a ``YX`` label image to the nearest cell.

    0 on the cells; where there is no cell at all, larger than any distance in the image.
    """
    outside = np.asarray(labels) == 0
    if outside.all():
        return np.full(outside.shape, sum(outside.shape), np.int32)
    return np.asarray(ndi.distance_transform_cdt(outside, metric="taxicab"), np.int32)


def _block_means(
    image: np.ndarray, mask: np.ndarray, step_px: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per ``step_px``² block: the share of masked pixels, and their mean (0 where none)."""
    pad = [(0, -n % step_px) for n in image.shape]
    weight = np.pad(mask.astype(np.float64), pad)
    values = np.pad(image, pad) * weight
    blocks = (weight.shape[0] // step_px, step_px, weight.shape[1] // step_px, step_px)
    count = weight.reshape(blocks).sum(axis=(1, 3))
    total = values.reshape(blocks).sum(axis=(1, 3))
    return count / step_px**2, np.where(count > 0, total / np.maximum(count, 1.0), 0.0)


@dataclass(frozen=True)
class Coverage:
    """How the predicted cells and a smoothed threshold of the same image agree.

    ``missed_fraction``: share of the thresholded area, in objects mostly outside every
    predicted cell, of that area plus the cells' (0 = nothing missed). ``unsupported_fraction``:
    share of predicted cells less than half of whose pixels pass the threshold (NaN: no cells).
    """

    missed_fraction: float
    unsupported_fraction: float


def cell_coverage(
    cell_image: np.ndarray,
    labels: np.ndarray,
    background: np.ndarray,
    min_area_px: int,
    smooth_px: float = 3.0,
    threshold_sd: float = 3.0,
    body_share: float = 0.4,
    margin_px: int = 4,
    distance: np.ndarray | None = None,
) -> Coverage:
    """Compare the predicted cells with a smoothed threshold, the classical way to find cells.

    ``cell_image`` minus ``background`` (ADU, ``YX``) is smoothed by ``smooth_px`` and cut at
    ``threshold_sd`` robust σ of its values away from the cells, or at ``body_share`` of the
    cells' median smoothed signal where that is higher (so bright debris stays small);
    objects under ``min_area_px`` are dropped. An object counts as missed when more than half
    of it lies over ``margin_px`` from every predicted cell (``distance``: the
    :func:`distance_to_cells` of ``labels``, when already at hand).
    """
    if distance is None:
        distance = distance_to_cells(labels)
    # on a grid 2 px coarser (2×2 block means): the threshold is for objects ≥ 6 px across
    residual = np.asarray(cell_image, np.float32) - background
    _, halved = _block_means(residual, np.ones(residual.shape, bool), 2)
    labels, near = labels[::2, ::2], distance[::2, ::2] <= margin_px
    cells = labels > 0
    smoothed = ndi.gaussian_filter(halved, smooth_px / 2)[: cells.shape[0], : cells.shape[1]]
    sample = smoothed[~near] if (~near).any() else smoothed.ravel()
    spread = _MAD_TO_SIGMA * float(np.median(np.abs(sample - np.median(sample))))
    body = float(np.median(smoothed[cells])) if cells.any() else 0.0
    found, n = ndi.label(smoothed > max(threshold_sd * spread, body_share * body))
    area = np.bincount(found.ravel(), minlength=n + 1)[1:]
    outside = np.bincount(found.ravel(), weights=(~near).ravel(), minlength=n + 1)[1:]
    min_area = min_area_px / 4
    missed = (area >= min_area) & (outside > 0.5 * area) & (outside >= min_area)
    missed_px = float(outside[missed].sum())
    missed_fraction = missed_px / max(float(cells.sum()) + missed_px, 1.0)
    ids = np.unique(labels[cells])
    if not len(ids):
        return Coverage(missed_fraction, float("nan"))
    passed = np.asarray(ndi.mean(found > 0, labels, ids))
    return Coverage(missed_fraction, float((passed < 0.5).mean()))
