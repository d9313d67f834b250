"""The U-Net builders: shapes from config, FLOP count, compiled predictor."""

from __future__ import annotations

import numpy as np
import pytest

from overnight.models.config import UNetConfig
from overnight.models.unet import build_unet, compiled_predictor, count_flops


@pytest.mark.parametrize(
    ("config", "shape", "out"),
    [
        (
            UNetConfig(ndim=2, in_channels=1, out_channels=3, base_filters=4),
            (1, 32, 48, 1),
            (1, 32, 48, 3),
        ),
        (
            UNetConfig(
                ndim=3, in_channels=1, out_channels=1, base_filters=2, head_activation="linear"
            ),
            (1, 5, 32, 16, 1),
            (1, 5, 32, 16, 1),
        ),
        (
            UNetConfig(
                ndim=3, out_channels=1, base_filters=2, head_activation="linear", z_window_slices=6
            ),
            (2, 6, 32, 16, 1),
            (2, 6, 32, 16, 1),
        ),
    ],
)
def test_unet_keeps_spatial_shape(
    config: UNetConfig, shape: tuple[int, ...], out: tuple[int, ...]
) -> None:
    model = build_unet(config)
    predict = compiled_predictor(model)
    result = predict(np.random.default_rng(0).random(shape, dtype=np.float32))
    assert result.shape == out


def test_softmax_head_sums_to_one() -> None:
    model = build_unet(UNetConfig(ndim=2, base_filters=4))
    probs = compiled_predictor(model)(
        np.random.default_rng(1).random((1, 16, 16, 1), dtype=np.float32)
    )
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)


def test_predictor_with_features_gives_last_decoder_map() -> None:
    model = build_unet(UNetConfig(ndim=2, base_filters=4))
    probs, features = compiled_predictor(model, with_features=True)(
        np.zeros((1, 16, 16, 1), np.float32)
    )
    assert probs.shape == (1, 16, 16, 3) and features.shape == (1, 16, 16, 4)


def test_flops_match_the_documented_reference() -> None:
    # TOOLING.md: 2D U-Net 512², 3 levels, 16 filters ≈ 18 GFLOP (convolutions dominate).
    flops_2d = count_flops(UNetConfig(ndim=2, base_filters=16), (512, 512))
    assert 12e9 < flops_2d < 22e9
    # The 3D U-Net pools in YX only, so each level has a quarter (not an eighth) of the voxels:
    # level sums 1 + 1/4 + 1/16 against 1 + 1/8 + 1/64 of a fully pooled one.
    flops_3d = count_flops(UNetConfig(ndim=3, base_filters=8, out_channels=1), (32, 256, 256))
    assert 80e9 < flops_3d < 100e9


def test_mixed_precision_network_computes_in_bfloat16_and_copies_to_float32() -> None:
    from overnight.models.training import inference_network

    config = UNetConfig(ndim=2, base_filters=4)
    mixed = build_unet(config, dtype_policy="mixed_bfloat16")
    assert mixed.get_layer("down0_conv1").compute_dtype == "bfloat16"
    assert mixed.get_layer("head").compute_dtype == "float32"  # the softmax stays exact
    assert all(w.dtype == np.float32 for w in mixed.get_weights())
    plain = inference_network(mixed, config, "unet")
    assert all(layer.compute_dtype == "float32" for layer in plain.layers)
    image = np.random.default_rng(2).random((1, 32, 32, 1), dtype=np.float32)
    exact = compiled_predictor(plain)(image)
    rounded = compiled_predictor(mixed)(image)
    assert exact.dtype == rounded.dtype == np.float32
    np.testing.assert_allclose(exact, rounded, atol=0.05)  # same weights, bf16 rounding apart
    assert not np.array_equal(exact, rounded)


def test_a_25d_network_keeps_each_slice_apart() -> None:
    """Slices become channels and come back in order: a shifted slice moves the output."""
    config = UNetConfig(
        ndim=3,
        out_channels=1,
        base_filters=4,
        n_levels=2,
        head_activation="linear",
        z_window_slices=4,
    )
    model = build_unet(config)
    assert model.get_layer("down0_conv1").kernel.shape == (3, 3, 4, 4)
    volume = np.zeros((1, 4, 16, 16, 1), np.float32)
    volume[0, 1, 8, 8] = 1.0
    out = compiled_predictor(model)(volume)
    assert out.shape == (1, 4, 16, 16, 1)
    flops = count_flops(config, (4, 16, 16))
    flat = UNetConfig(ndim=2, in_channels=4, out_channels=4, base_filters=4, n_levels=2)
    assert flops == count_flops(flat, (16, 16))
    assert count_flops(config, (10, 16, 16)) == 4 * flops  # windows 0, 2, 4, 6 of 4 slices
