"""Wide Gaussian smoothing as banded matrix products: the values of ``scipy.ndimage``, faster.

``scipy.ndimage.gaussian_filter1d`` costs one multiply-add per kernel tap and pixel, in a
scalar loop: with σ = 8 px (65 taps) it was half the cost of the focus projection. The same
linear map along one axis is a banded matrix (the kernel, folded at the edges as ``reflect``
mode folds it); cut into blocks of rows, each block is one small matrix product over its
band, which BLAS runs several times faster. Products are in float64 and rounded to the
input's float type after each axis, as SciPy does, so the results equal SciPy's except, very
rarely, in the last bit of a float32 (a sum rounded the other way).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from overnight.lazy import lazy_module

if TYPE_CHECKING:  # the `analysis` extra, imported on first use (overnight.lazy)
    from scipy import ndimage as ndi
else:
    ndi = lazy_module("scipy.ndimage")

#: Kernel radius (in σ) where SciPy cuts the Gaussian (its ``truncate`` default).
TRUNCATE = 4.0
#: Output rows per matrix product: each reads ``BLOCK_PX + 2 × radius`` input rows.
BLOCK_PX = 32


#: One block of a banded operator: output rows ``start:stop`` read input rows ``low:high``
#: through ``band`` (``(stop - start, high - low)``, float64).
Band = tuple[int, int, int, int, np.ndarray]


def _bands(
    n_px: int, radius: int, filter_columns: Callable[[np.ndarray], np.ndarray]
) -> tuple[Band, ...]:
    """The blocks of the ``(n, n)`` operator of a 1D filter of ``radius`` px along ``n_px``.

    Each block's columns are the filter's responses to unit impulses (``filter_columns``
    filters the columns of an ``(n, m)`` array), so the weights and their folding at the
    edges are the filter's own; only the band is kept (``n × (BLOCK_PX + 2 radius)`` values,
    not ``n²``).

    The impulses are filtered over the rows ``low:high`` alone: a row of the block reads
    ``radius`` rows either side, all among them, and they fold only at the axis's own ends,
    so the values are those of filtering ``n``-long columns, at ``O(n · band)`` instead of
    ``O(n² · band / BLOCK_PX)`` (a 2048 px axis's σ = 8 operator took ~1 s to build).
    """
    bands = []
    for start in range(0, n_px, BLOCK_PX):
        stop = min(n_px, start + BLOCK_PX)
        low, high = max(0, start - radius), min(n_px, stop + radius)
        band = np.ascontiguousarray(filter_columns(np.eye(high - low))[start - low : stop - low])
        band.setflags(write=False)
        bands.append((start, stop, low, high, band))
    return tuple(bands)


@lru_cache(maxsize=32)
def gaussian_bands(n_px: int, sigma_px: float) -> tuple[Band, ...]:
    """The blocks of ``K`` with ``gaussian_filter1d(x, σ) == K @ x`` along ``n_px`` (reflect)."""
    return _bands(
        n_px,
        int(TRUNCATE * sigma_px + 0.5),
        lambda columns: ndi.gaussian_filter1d(columns, sigma_px, axis=0, truncate=TRUNCATE),
    )


def gaussian_filter1d(image: np.ndarray, sigma_px: float, axis: int) -> np.ndarray:
    """Gaussian smoothing along ``axis`` of a float32 array (any shape), reflect mode.

    Parameters
    ----------
    image : ndarray of float32
        Any number of axes (another dtype raises ``TypeError``).
    sigma_px : float
        Standard deviation of the Gaussian (px along ``axis``).
    axis : int
        The axis smoothed.

    Returns
    -------
    ndarray of float32, the shape of ``image``
        ``scipy.ndimage.gaussian_filter1d(image, sigma_px, axis)`` (see the module docstring).
    """
    image = np.asarray(image)
    if image.dtype != np.float32:
        raise TypeError(f"gaussian_filter1d smooths float32 arrays, not {image.dtype}")
    axis = axis % image.ndim
    bands = gaussian_bands(image.shape[axis], float(sigma_px))
    return _banded_product(image, bands, axis)


def _banded_product(values: np.ndarray, bands: tuple[Band, ...], axis: int) -> np.ndarray:
    """The banded operator of ``bands`` along ``axis`` of ``values``; float32 result.

    The products are in float64. Along an axis other than the last, ``values`` are taken to
    float64 one leading index at a time (a ``YX`` slice of a ``ZYX`` volume), not all at once:
    the same products, without a float64 copy of the whole array (400 MB for a 2048² × 12
    field, where it set the worker's peak memory).
    """
    shape = values.shape
    before = int(np.prod(shape[:axis]))
    values = values.reshape(before, shape[axis], -1)  # (before, n, after)
    out = np.empty(values.shape, np.float32)
    if values.shape[2] == 1:  # rows of the flattened leading axes times the band
        doubles = values.astype(np.float64, copy=False)
        for start, stop, low, high, band in bands:
            out[:, start:stop, 0] = doubles[:, low:high, 0] @ band.T
        return out.reshape(shape)
    for index in range(before):  # one 2D product per leading index and block (NumPy's
        doubles = values[index].astype(np.float64, copy=False)  # stacked products skip BLAS)
        for start, stop, low, high, band in bands:
            out[index, start:stop] = band @ doubles[low:high]
    return out.reshape(shape)


@lru_cache(maxsize=32)
def second_difference_bands(n_px: int) -> tuple[Band, ...]:
    """The blocks of ``scipy.ndimage``'s second derivative ``[1, -2, 1]`` along ``n_px``."""
    return _bands(n_px, 1, lambda columns: ndi.correlate1d(columns, [1.0, -2.0, 1.0], axis=0))


def laplace(image: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.laplace`` of a float32 ``YX`` image: the same float32 values.

    Each second difference of float32 values is exact in float64 whatever the order of its
    three terms, so rounding it to float32 gives SciPy's value bit for bit; the two axes'
    float32 results are added in float32, as SciPy adds them.
    """
    image = np.asarray(image)
    if image.dtype != np.float32 or image.ndim != 2:
        return np.asarray(ndi.laplace(image))
    values = image.astype(np.float64)
    along_y = _banded_product(values, second_difference_bands(image.shape[0]), 0)
    along_x = _banded_product(values, second_difference_bands(image.shape[1]), 1)
    return along_y + along_x


#: Shortest axis smoothed by matrix products; SciPy is as fast on shorter ones (and on the
#: last, contiguous axis, where its loop reads memory in order).
MIN_BANDED_PX = 64


def gaussian_filter(image: np.ndarray, sigma_px: float | tuple[float, ...]) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(image, sigma_px)`` of a float32 array (reflect mode).

    Axes in order, each rounded to float32, as SciPy does; an axis of σ 0 is left as it is.
    Axes other than the last of at least ``MIN_BANDED_PX`` px run as banded matrix products.
    Other dtypes go to SciPy as they are.
    """
    if np.asarray(image).dtype != np.float32:
        return np.asarray(ndi.gaussian_filter(image, sigma_px))
    image = np.asarray(image)
    sigmas = (
        (float(sigma_px),) * image.ndim
        if isinstance(sigma_px, (int, float, np.number))
        else tuple(float(sigma) for sigma in sigma_px)
    )
    if len(sigmas) != image.ndim:
        raise ValueError(f"{len(sigmas)} σ for an array of {image.ndim} axes")
    out = image
    for axis, sigma in enumerate(sigmas):
        if sigma <= 1e-15:
            continue
        if axis < image.ndim - 1 and image.shape[axis] >= MIN_BANDED_PX:
            out = gaussian_filter1d(out, sigma, axis)
        else:
            out = np.asarray(ndi.gaussian_filter1d(out, sigma, axis=axis), np.float32)
    return out if out is not image else image.copy()


def gaussian_filter_yx(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(image, sigma_px)`` of a float32 ``YX`` image (reflect).

    ``Y`` first, then ``X``, each rounded to float32, as SciPy does; both as matrix products
    (the faster way for a wide kernel, σ ≳ 4 px, on both axes).
    """
    return gaussian_filter1d(gaussian_filter1d(image, sigma_px, 0), sigma_px, 1)
