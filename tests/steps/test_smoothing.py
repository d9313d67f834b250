"""Banded-matrix Gaussian smoothing gives SciPy's values (the focus projection relies on it)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from overnight.steps.cells import focus_projection
from overnight.steps.smoothing import (
    gaussian_filter,
    gaussian_filter1d,
    gaussian_filter_yx,
    laplace,
)


@pytest.mark.parametrize("shape", [(64, 48), (3, 70, 41), (5, 9), (1, 130)])
@pytest.mark.parametrize("sigma", [1.0, 2.0, 8.0])
def test_smoothing_equals_scipy(shape: tuple[int, ...], sigma: float) -> None:
    rng = np.random.default_rng(len(shape) + int(sigma))
    image = (rng.random(shape, dtype=np.float32) ** 3 * 1000).astype(np.float32)
    for axis in range(len(shape)):
        expected = ndi.gaussian_filter1d(image, sigma, axis=axis)
        got = gaussian_filter1d(image, sigma, axis)
        assert got.dtype == np.float32 and got.shape == image.shape
        # float64 sums in another order: equal after rounding to float32, but for a rare last bit
        np.testing.assert_allclose(got, expected, rtol=2e-7, atol=0)
        assert np.mean(got == expected) > 0.999


def test_yx_smoothing_equals_scipy_gaussian_filter() -> None:
    image = np.random.default_rng(7).random((200, 150), dtype=np.float32) * 500
    expected = ndi.gaussian_filter(image, 8.0)
    np.testing.assert_allclose(gaussian_filter_yx(image, 8.0), expected, rtol=2e-7, atol=0)


def test_focus_projection_equals_the_scipy_formulation() -> None:
    """The projection before the banded smoothing (SciPy's σ = 8 filter) picks the same slices."""
    rng = np.random.default_rng(11)
    volume = ndi.gaussian_filter(rng.random((5, 96, 80)), (0, 2, 2)).astype(np.float32) * 900
    volume[2, 20:60, 20:60] += rng.normal(0, 40, (40, 40)).astype(np.float32)  # one sharp slice
    sharpness = np.stack(
        [ndi.gaussian_filter(ndi.laplace(ndi.gaussian_filter(s, 1.0)) ** 2, 8.0) for s in volume]
    )
    expected = np.take_along_axis(volume, np.argmax(sharpness, axis=0)[None], axis=0)[0]
    np.testing.assert_array_equal(focus_projection(volume), expected)


@pytest.mark.parametrize(
    ("shape", "sigma"), [((80, 70), 1.0), ((80, 70), 2.0), ((4, 90, 66), (1.0, 1.0, 1.0))]
)
def test_gaussian_filter_equals_scipy(shape: tuple[int, ...], sigma: float) -> None:
    image = np.random.default_rng(3).random(shape, dtype=np.float32) * 300
    expected = ndi.gaussian_filter(image, sigma)
    got = gaussian_filter(image, sigma)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=2e-7, atol=0)


def test_gaussian_filter_leaves_sigma_zero_axes_and_other_dtypes_to_scipy() -> None:
    image = np.random.default_rng(4).random((3, 70, 20), dtype=np.float32)
    np.testing.assert_allclose(
        gaussian_filter(image, (0.0, 1.0, 1.0)),
        ndi.gaussian_filter(image, (0.0, 1.0, 1.0)),
        rtol=2e-7,
        atol=0,
    )
    doubles = image.astype(np.float64)
    np.testing.assert_array_equal(gaussian_filter(doubles, 1.0), ndi.gaussian_filter(doubles, 1.0))
    with pytest.raises(TypeError, match="float32"):
        gaussian_filter1d(doubles, 1.0, 0)


@pytest.mark.parametrize("shape", [(64, 48), (5, 9), (1, 30), (130, 1)])
def test_laplace_equals_scipy_bit_for_bit(shape: tuple[int, int]) -> None:
    image = ndi.gaussian_filter(np.random.default_rng(5).random(shape, dtype=np.float32), 1.0)
    np.testing.assert_array_equal(laplace(image * 700), ndi.laplace(image * 700))


def test_the_cached_operators_hold_bands_not_squares() -> None:
    """A 4096 px axis keeps ~4096 × 96 weights for σ = 8, not 4096² (128 MiB)."""
    from overnight.steps.smoothing import BLOCK_PX, gaussian_bands

    bands = gaussian_bands(4096, 8.0)
    held = sum(band.size for *_, band in bands)
    assert held <= 4096 * (BLOCK_PX + 2 * 32)
    assert [start for start, *_ in bands] == list(range(0, 4096, BLOCK_PX))


def _bands_of_whole_columns(n_px: int, radius: int, filter_columns):  # type: ignore[no-untyped-def]
    """The band blocks as first built: impulses filtered along the whole ``n_px`` axis."""
    from overnight.steps.smoothing import BLOCK_PX

    bands = []
    for start in range(0, n_px, BLOCK_PX):
        stop = min(n_px, start + BLOCK_PX)
        low, high = max(0, start - radius), min(n_px, stop + radius)
        impulses = np.zeros((n_px, high - low))
        impulses[np.arange(low, high), np.arange(high - low)] = 1.0
        bands.append((start, stop, low, high, filter_columns(impulses)[start:stop]))
    return bands


@pytest.mark.parametrize("n_px", [1, 5, 31, 33, 40, 64, 97, 130, 300])
@pytest.mark.parametrize("sigma", [1.0, 2.0, 8.0])
def test_bands_built_over_their_rows_equal_those_of_whole_columns(n_px: int, sigma: float) -> None:
    """Each block's operator, filtered over its own rows only, holds the whole axis's values."""
    from overnight.steps.smoothing import _bands, gaussian_bands

    radius = int(4.0 * sigma + 0.5)
    expected = _bands_of_whole_columns(
        n_px, radius, lambda c: ndi.gaussian_filter1d(c, sigma, axis=0, truncate=4.0)
    )
    got = gaussian_bands(n_px, sigma)
    assert [band[:4] for band in got] == [band[:4] for band in expected]
    for (*_, band), (*_, reference) in zip(got, expected, strict=True):
        np.testing.assert_array_equal(band, reference)
    second = lambda c: ndi.correlate1d(c, [1.0, -2.0, 1.0], axis=0)  # noqa: E731
    for (*edges, band), (*reference_edges, reference) in zip(
        _bands(n_px, 1, second), _bands_of_whole_columns(n_px, 1, second), strict=True
    ):
        assert edges == reference_edges
        np.testing.assert_array_equal(band, reference)


def _whole_array_banded_product(values, bands, axis):  # type: ignore[no-untyped-def]
    """The banded product as first written: one float64 copy of the whole array."""
    shape = values.shape
    before = int(np.prod(shape[:axis]))
    doubles = values.astype(np.float64).reshape(before, shape[axis], -1)
    out = np.empty(doubles.shape, np.float32)
    for start, stop, low, high, band in bands:
        if doubles.shape[2] == 1:
            out[:, start:stop, 0] = doubles[:, low:high, 0] @ band.T
        else:
            for index in range(before):
                out[index, start:stop] = band @ doubles[index, low:high]
    return out.reshape(shape)


@pytest.mark.parametrize(("shape", "axis"), [((5, 96, 70), 1), ((2, 3, 80, 40), 2), ((90, 66), 0)])
def test_slice_by_slice_products_equal_the_whole_array_product_bit_for_bit(
    shape: tuple[int, ...], axis: int
) -> None:
    """Taking one leading index at a time to float64 leaves every value as it was."""
    from overnight.steps.smoothing import _banded_product, gaussian_bands

    image = (np.random.default_rng(9).random(shape, dtype=np.float32) ** 3 * 900).astype(np.float32)
    for sigma in (1.0, 3.0):
        bands = gaussian_bands(shape[axis], sigma)
        np.testing.assert_array_equal(
            _banded_product(image, bands, axis), _whole_array_banded_product(image, bands, axis)
        )
    np.testing.assert_array_equal(
        gaussian_filter(image, 1.0), _reference_gaussian_filter(image, 1.0)
    )


def _reference_gaussian_filter(image: np.ndarray, sigma: float) -> np.ndarray:
    """:func:`gaussian_filter` with every banded axis through the whole-array product."""
    from overnight.steps.smoothing import MIN_BANDED_PX, gaussian_bands

    out = image
    for axis in range(image.ndim):
        if axis < image.ndim - 1 and image.shape[axis] >= MIN_BANDED_PX:
            bands = gaussian_bands(image.shape[axis], sigma)
            out = _whole_array_banded_product(out, bands, axis)
        else:
            out = np.asarray(ndi.gaussian_filter1d(out, sigma, axis=axis), np.float32)
    return out
