"""The ONNX export of the U-Nets: ONNX Runtime's outputs equal Keras's, in Keras's layout."""

from __future__ import annotations

import numpy as np
import pytest

from overnight.models.config import UNetConfig
from overnight.models.onnx_export import (
    OnnxExportError,
    export_unet,
    onnx_predictor,
)
from overnight.models.unet import build_unet, compiled_predictor

RTOL = 1e-5  # of the output's scale: float32 sums in another order


def _randomised(config: UNetConfig, seed: int = 0) -> object:
    """``build_unet(config)`` with He-scaled random kernels and non-zero biases."""
    model = build_unet(config)
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if len(shape) > 1:
            fan_in = int(np.prod(shape[:-1]))
            weight.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32))
        else:
            weight.assign(rng.normal(0.0, 0.1, shape).astype(np.float32))
    return model


def _assert_close(expected: np.ndarray, actual: np.ndarray) -> None:
    assert actual.shape == expected.shape and actual.dtype == np.float32
    scale = max(float(np.abs(expected).max()), 1e-6)
    assert float(np.abs(actual - expected).max()) <= RTOL * scale


CASES = [
    (UNetConfig(ndim=2, in_channels=1, out_channels=3, base_filters=4), (2, 32, 48, 1)),
    (
        UNetConfig(
            ndim=2,
            in_channels=2,
            out_channels=2,
            n_levels=4,
            base_filters=3,
            head_activation="linear",
        ),
        (1, 16, 24, 2),
    ),
    (
        UNetConfig(
            ndim=3,
            in_channels=2,
            out_channels=3,
            base_filters=2,
            head_activation="linear",
            z_window_slices=5,
        ),
        (2, 5, 16, 24, 2),
    ),
    (
        UNetConfig(ndim=3, in_channels=1, out_channels=2, base_filters=4, z_window_slices=6),
        (1, 6, 16, 16, 1),
    ),
    (
        UNetConfig(
            ndim=3,
            in_channels=1,
            out_channels=1,
            base_filters=2,
            head_activation="softplus",
            z_window_slices=4,
        ),
        (1, 4, 8, 8, 1),
    ),
    (
        UNetConfig(ndim=3, in_channels=1, out_channels=1, base_filters=2, head_activation="linear"),
        (1, 3, 16, 8, 1),
    ),
]


@pytest.mark.parametrize(("config", "shape"), CASES)
def test_onnx_output_equals_keras(config: UNetConfig, shape: tuple[int, ...]) -> None:
    model = _randomised(config)
    batch = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    expected = compiled_predictor(model)(batch)
    _assert_close(expected, onnx_predictor(export_unet(model, config))(batch))


@pytest.mark.parametrize("split_skip", [True, False])
def test_onnx_skip_concatenation_or_split_convolution_equal_keras(split_skip: bool) -> None:
    config = UNetConfig(ndim=2, in_channels=2, out_channels=2, n_levels=3, base_filters=3)
    model = _randomised(config, seed=6)
    batch = np.random.default_rng(7).normal(size=(1, 16, 16, 2)).astype(np.float32)
    model_bytes = export_unet(model, config, split_skip=split_skip)
    _assert_close(compiled_predictor(model)(batch), onnx_predictor(model_bytes)(batch))


def test_onnx_softmax_is_over_channels() -> None:
    config = UNetConfig(ndim=2, out_channels=3, base_filters=2, n_levels=2)
    predict = onnx_predictor(export_unet(_randomised(config), config))
    probs = predict(np.random.default_rng(2).random((1, 8, 8, 1), dtype=np.float32))
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "config",
    [
        UNetConfig(ndim=2, base_filters=4),
        UNetConfig(
            ndim=3, out_channels=1, base_filters=3, z_window_slices=4, head_activation="linear"
        ),
    ],
)
def test_onnx_features_equal_keras(config: UNetConfig) -> None:
    model = _randomised(config, seed=3)
    shape = (1, 16, 16, 1) if config.ndim == 2 else (1, 4, 16, 16, 1)
    batch = np.random.default_rng(4).random(shape, dtype=np.float32)
    expected = compiled_predictor(model, with_features=True)(batch)
    actual = onnx_predictor(export_unet(model, config, with_features=True))(batch)
    assert actual[1].shape == (1, 16, 16, config.base_filters)
    for e, a in zip(expected, actual, strict=True):
        _assert_close(e, a)


def test_onnx_model_takes_any_batch_and_size() -> None:
    config = UNetConfig(ndim=2, base_filters=2, n_levels=2)
    model = _randomised(config)
    predict = onnx_predictor(export_unet(model, config), threads=2, spinning=False, nchwc=False)
    rng = np.random.default_rng(5)
    for shape in [(1, 8, 8, 1), (3, 16, 24, 1)]:
        batch = rng.random(shape, dtype=np.float32)
        _assert_close(compiled_predictor(model)(batch), predict(batch))


def test_export_refuses_a_network_unlike_its_config() -> None:
    model = build_unet(UNetConfig(ndim=2, base_filters=2, n_levels=2))
    with pytest.raises(OnnxExportError, match="down1_conv1"):
        export_unet(model, UNetConfig(ndim=2, base_filters=2, n_levels=3))
