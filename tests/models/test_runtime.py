"""The inference runtime: the setting, and the same results on ONNX Runtime as on TensorFlow."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from overnight.errors import ConfigError
from overnight.models.cells import CellModel
from overnight.models.config import UNetConfig
from overnight.models.loading import model_settings, resolve_model_dir
from overnight.models.pnp import PnpModel
from overnight.models.runtime import (
    RUNTIME_ENV,
    inference_runtime,
    network_predictor,
)
from overnight.models.unet import build_unet
from overnight.synth.cytometry import draw_field


@pytest.fixture(autouse=True)
def _settings_read_again() -> Iterator[None]:
    """Each test reads OVERNIGHT_INFERENCE_RUNTIME as it sets it; the next ones read theirs."""
    model_settings.cache_clear()
    yield
    model_settings.cache_clear()


def _use(monkeypatch: pytest.MonkeyPatch, runtime: str | None) -> None:
    if runtime is None:
        monkeypatch.delenv(RUNTIME_ENV, raising=False)
    else:
        monkeypatch.setenv(RUNTIME_ENV, runtime)
    model_settings.cache_clear()


def test_the_setting_names_the_runtime() -> None:
    assert inference_runtime("tensorflow") == "tensorflow"
    assert inference_runtime(" ONNXRuntime ") == "onnxruntime"


def test_auto_runs_onnxruntime_on_a_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    # CI and this project's machines have no GPU; the models extra installs onnxruntime
    _use(monkeypatch, None)
    assert inference_runtime() == "onnxruntime"
    _use(monkeypatch, "tensorflow")
    assert inference_runtime() == "tensorflow"


def test_an_unknown_runtime_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="OVERNIGHT_INFERENCE_RUNTIME='torch'.*auto"):
        inference_runtime("torch")


def test_both_runtimes_predict_the_same() -> None:
    config = UNetConfig(ndim=2, in_channels=1, out_channels=3, base_filters=4, n_levels=2)
    network = build_unet(config)
    batch = np.random.default_rng(0).normal(size=(1, 64, 48, 1)).astype(np.float32)
    tf_out = network_predictor(network, config, runtime="tensorflow")(batch)
    ort_out = network_predictor(network, config, runtime="onnxruntime")(batch)
    assert ort_out.shape == tf_out.shape == (1, 64, 48, 3)
    np.testing.assert_allclose(ort_out, tf_out, atol=1e-5)


def _models(monkeypatch: pytest.MonkeyPatch, runtime: str) -> tuple[CellModel, PnpModel]:
    _use(monkeypatch, runtime)
    return (
        CellModel.load(resolve_model_dir("", "cells")),
        PnpModel.load(resolve_model_dir("", "pnp")),
    )


def test_shipped_models_find_the_same_cells_and_particles_on_both_runtimes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    field = draw_field(np.random.default_rng(3), 256)
    image = field.image.astype(np.float32)
    results = {}
    for runtime in ("tensorflow", "onnxruntime"):
        cells, pnps = _models(monkeypatch, runtime)
        results[runtime] = (cells.segment(image[:, 0]).labels, pnps.detect(image[:, 1]))
    tf_labels, tf_spots = results["tensorflow"]
    ort_labels, ort_spots = results["onnxruntime"]
    assert tf_labels.max() >= 2 and len(tf_spots.z) > 10  # a field with something to find
    assert (tf_labels == ort_labels).mean() > 0.999
    assert tf_labels.max() == ort_labels.max()
    assert len(tf_spots.z) == len(ort_spots.z)
    np.testing.assert_allclose(ort_spots.y, tf_spots.y, atol=0.05)
