"""Tiled inference: tiles cover the image, weights blend to one, tiled ≈ untiled."""

from __future__ import annotations

import numpy as np
import pytest

from overnight.models.config import UNetConfig
from overnight.models.tiling import (
    blend_weights,
    predict_tiled,
    predict_z_windows,
    tile_starts,
    z_window_starts,
)
from overnight.models.unet import build_unet, compiled_predictor


@pytest.mark.parametrize(
    ("size", "tile", "overlap"), [(1000, 512, 128), (2048, 512, 96), (130, 64, 32), (64, 64, 16)]
)
def test_tiles_cover_the_axis_with_positive_weight(size: int, tile: int, overlap: int) -> None:
    starts = tile_starts(size, tile, overlap, 4)
    total = np.zeros(size)
    for start in starts:
        length = min(tile, size - start)
        total[start : start + length] += blend_weights(length, start, size, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, size) == size
    assert total.min() >= 0.5  # predict_tiled divides by this sum, so the blend is a weighted mean


def test_regular_tiles_blend_to_exactly_one() -> None:
    total = np.zeros(896)
    for start in tile_starts(896, 512, 128, 4):  # starts 0 and 384: one overlap of 128 px
        total[start : start + 512] += blend_weights(512, start, 896, 128)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_tiled_equals_untiled_for_a_pointwise_function() -> None:
    image = np.random.default_rng(0).random((130, 200, 1), dtype=np.float32)
    (out,) = predict_tiled(lambda b: b * 2.0, image, 64, 32, 4)
    np.testing.assert_allclose(out, image * 2.0, rtol=1e-6)


@pytest.mark.parametrize("ndim", [2, 3])
def test_tiled_unet_matches_untiled_within_rounding(ndim: int) -> None:
    config = UNetConfig(
        ndim=ndim, base_filters=4, n_levels=2, out_channels=2, head_activation="softmax"
    )
    predict = compiled_predictor(build_unet(config))
    rng = np.random.default_rng(3)
    shape = (160, 224, 1) if ndim == 2 else (4, 160, 224, 1)
    image = rng.random(shape, dtype=np.float32)
    whole = predict(image[None])[0]
    (tiled,) = predict_tiled(predict, image, 96, 48, config.size_multiple_px)
    assert tiled.shape == whole.shape
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


@pytest.mark.parametrize("shape", [(64, 60, 2), (3, 37, 50, 1)])
def test_one_tile_is_the_prediction_itself(shape: tuple[int, ...]) -> None:
    """A field no larger than a tile skips the blend: the same values, -0.0 made 0.0."""
    image = np.random.default_rng(5).random(shape, dtype=np.float32) - 0.5
    image.flat[0] = -0.0

    def predict(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return batch * 2.0 - 1.0, batch[..., :1] * 0.0

    doubled, zeros = predict_tiled(predict, image, 64, 16, 4)
    np.testing.assert_array_equal(doubled, image * 2.0 - 1.0)
    assert doubled.dtype == np.float32 and doubled.shape == image.shape
    assert zeros.shape == (*image.shape[:-1], 1) and not np.signbit(zeros).any()


def test_odd_sizes_are_padded_and_cropped_back() -> None:
    config = UNetConfig(ndim=2, base_filters=4, n_levels=3)
    predict = compiled_predictor(build_unet(config))
    image = np.random.default_rng(4).random((37, 50, 1), dtype=np.float32)
    (out,) = predict_tiled(predict, image, 64, 16, config.size_multiple_px)
    assert out.shape == (37, 50, 3)


@pytest.mark.parametrize("n_z", [1, 5, 12, 13, 32])
def test_z_windows_cover_the_stack_and_blend_a_pointwise_function_exactly(n_z: int) -> None:
    volume = np.random.default_rng(n_z).random((n_z, 8, 8), dtype=np.float32)
    seen: list[int] = []

    def predict(window: np.ndarray) -> np.ndarray:
        assert window.shape == (12, 8, 8)
        seen.append(1)
        return window * 3.0

    out = predict_z_windows(predict, volume, 12)
    np.testing.assert_allclose(out, volume * 3.0, rtol=1e-6)
    assert len(seen) == len(z_window_starts(n_z, 12))


def test_deep_stacks_cost_windows_in_proportion() -> None:
    assert len(z_window_starts(12, 12)) == 1
    assert len(z_window_starts(32, 12)) == 4


def test_predict_tiled_holds_its_outputs_and_one_tile_not_field_sized_accumulators() -> None:
    """Issue 13 #3: no field-sized float32 weight sum beside the outputs (the sum is separable)."""
    import tracemalloc

    image = np.random.default_rng(1).random((1000, 1100, 1), dtype=np.float32)
    tracemalloc.start()
    (out,) = predict_tiled(lambda batch: batch * 2.0, image, 256, 32, 4)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tile_bytes = 256 * 256 * 4
    assert peak < out.nbytes + 8 * tile_bytes, (peak, out.nbytes)
    np.testing.assert_allclose(out, image * 2.0, rtol=1e-5)
