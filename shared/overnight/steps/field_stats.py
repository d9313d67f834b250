"""Field-wide statistics measured on a sample grid fixed in field coordinates (issue 15).

Some steps scale or threshold an image by a statistic of the whole field: the cell
projection's normalisation percentiles, the classical Otsu threshold, the particle channel's
background and noise, the learned particle model's input scale. A field analysed in blocks
must use the field's numbers, not each block's. Every such statistic is measured on the
points of a *sample grid*: every ``step_px``-th pixel in ``y`` and ``x``, counted from the
field's first pixel (:func:`grid_sample`). Block cores tile the field without overlap, so the
union of the cores' samples is the whole field's sample, and statistics that depend only on
the sample's values (percentiles, medians, Otsu's histogram) are the same in both paths.
Where a statistic reads a filtered image (a projection, a smoothing, a Laplacian of Gaussian),
a block filters its read window (core + halo) and samples only its core: with a halo wider
than the filter, the core's filtered values are the field's.

The grid step grows with the field so that a sample holds at most :data:`MAX_SAMPLE_POINTS`
values (:func:`sample_step`): every pixel of a 2048² projection, every second pixel of a
particle channel of up to 16 slices of 1024².

Examples
--------
>>> image = np.arange(36.0).reshape(6, 6)
>>> whole = grid_sample(image, 2)
>>> parts = [grid_sample(image[y0:y1], 2, (y0, 0)) for y0, y1 in ((0, 3), (3, 6))]
>>> sorted(whole.tolist()) == sorted(np.concatenate(parts).tolist())
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from overnight.lazy import lazy_module

if TYPE_CHECKING:  # the `analysis` extra, imported on first use (overnight.lazy)
    from skimage import filters
else:
    filters = lazy_module("skimage.filters")

#: Most values in one sample (points x planes): 16 MiB of float32.
MAX_SAMPLE_POINTS = 4 * 1024 * 1024
#: Robust σ of a normal distribution from its median absolute deviation.
MAD_TO_SD = 1.4826
#: The smallest robust SD a background estimate reports (ADU), so noise is never 0.
MIN_NOISE_SD = 1e-3


@dataclass(frozen=True)
class FieldStatistics:
    """A field's statistics, measured once for the whole field; None where not measured.

    Attributes
    ----------
    cell_range : (float, float) or None
        Cell projection values at the cell model's normalisation percentiles (ADU).
    cell_threshold : float or None
        Otsu's threshold of the smoothed cell projection (ADU), classical foreground.
    spot_noise_sd : float or None
        Robust SD of the particle channel's scale-normalised LoG response (classical spots).
    spot_background_adu : float or None
        Median of the Gaussian-smoothed particle channel (classical spot intensities).
    pnp_background_adu, pnp_spot_peak_adu : float or None
        The learned particle model's input scale: the channel's median, and one particle's
        smoothed peak above it (ADU).
    """

    cell_range: tuple[float, float] | None = None
    cell_threshold: float | None = None
    spot_noise_sd: float | None = None
    spot_background_adu: float | None = None
    pnp_background_adu: float | None = None
    pnp_spot_peak_adu: float | None = None


def sample_step(
    shape_yx: tuple[int, int],
    base_step_px: int = 1,
    n_planes: int = 1,
    max_points: int = MAX_SAMPLE_POINTS,
) -> int:
    """The sample grid's step (px) for a ``shape_yx`` field of ``n_planes`` planes.

    The smallest multiple of ``base_step_px`` whose grid holds at most ``max_points`` values
    over all planes. It depends only on the field's shape, so a field and its blocks agree.

    Examples
    --------
    >>> sample_step((2048, 2048)), sample_step((4096, 4096)), sample_step((1024, 1024), 2, 12)
    (1, 2, 2)
    """
    height, width = (int(n) for n in shape_yx)
    factor = max(1, math.floor(math.sqrt(n_planes * height * width / max_points) / base_step_px))
    while True:
        step = base_step_px * factor
        if n_planes * -(-height // step) * -(-width // step) <= max_points:
            return step
        factor += 1


def grid_sample(
    values: np.ndarray,
    step_px: int,
    origin_yx: tuple[int, int] = (0, 0),
    region: tuple[slice, slice] | None = None,
) -> np.ndarray:
    """The values (1D) at the sample grid's points: field ``y`` and ``x`` multiples of ``step_px``.

    Parameters
    ----------
    values : ndarray of shape (..., Y, X)
        A window of the field (planes first, if any).
    step_px : int
        The grid's step (:func:`sample_step`).
    origin_yx : (int, int)
        Field coordinates of ``values[..., 0, 0]``.
    region : (slice, slice) or None
        Only the points in this part of the window (e.g. a block's core); None = all of it.

    Examples
    --------
    >>> grid_sample(np.arange(10.0)[None], 3, (0, 1)).tolist()
    [2.0, 5.0, 8.0]
    """
    height, width = values.shape[-2:]
    ys, xs = region if region is not None else (slice(0, height), slice(0, width))
    y0, y1, _ = ys.indices(height)
    x0, x1, _ = xs.indices(width)
    first_y = y0 + (-(origin_yx[0] + y0)) % step_px
    first_x = x0 + (-(origin_yx[1] + x0)) % step_px
    return np.ravel(values[..., first_y:y1:step_px, first_x:x1:step_px])


def intensity_range(sample: np.ndarray, low_pct: float, high_pct: float) -> tuple[float, float]:
    """The sample's ``low_pct`` and ``high_pct`` percentiles."""
    low, high = np.percentile(sample, [low_pct, high_pct])
    return float(low), float(high)


def otsu_threshold(sample: np.ndarray) -> float:
    """Otsu's threshold of the sample's values (256-bin histogram between its extremes)."""
    return float(filters.threshold_otsu(np.ravel(sample)))


def robust_background(sample: np.ndarray) -> tuple[float, float]:
    """Median and robust SD (MAD x :data:`MAD_TO_SD`, at least :data:`MIN_NOISE_SD`) of a sample.

    Examples
    --------
    >>> robust_background(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    (3.0, 1.4826)
    """
    median = float(np.median(sample))
    mad = float(np.median(np.abs(sample - median)))
    return median, max(MAD_TO_SD * mad, MIN_NOISE_SD)
