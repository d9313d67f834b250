"""int8 quantisation of the U-Nets and the PNP and cell models' shipped int8 networks."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from overnight.models.cells import CellModel
from overnight.models.config import UNetConfig
from overnight.models.loading import model_settings, resolve_model_dir
from overnight.models.onnx_export import export_unet, onnx_predictor
from overnight.models.pnp import PnpModel
from overnight.models.quantize import (
    INT8_FILE,
    INT8_META_FILE,
    QuantizeError,
    float_layers,
    int8_model,
    quantize_unet,
    write_int8_model,
)
from overnight.models.registry import WEIGHTS_FILE, weights_digest
from overnight.models.runtime import INT8_ENV, RUNTIME_ENV, int8_enabled
from overnight.models.unet import build_unet

pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def _settings_read_again() -> Iterator[None]:
    """Each test reads the OVERNIGHT_INFERENCE_* settings as it sets them."""
    model_settings.cache_clear()
    yield
    model_settings.cache_clear()


def _setting(monkeypatch: pytest.MonkeyPatch, int8: str, runtime: str = "onnxruntime") -> None:
    monkeypatch.setenv(INT8_ENV, int8)
    monkeypatch.setenv(RUNTIME_ENV, runtime)
    model_settings.cache_clear()


def _folder(tmp_path: Path, digest: str | None) -> Path:
    """A folder with a weights file and an int8 file recording ``digest`` (None: no sidecar)."""
    (tmp_path / WEIGHTS_FILE).write_bytes(b"weights")
    (tmp_path / INT8_FILE).write_bytes(b"onnx")
    if digest is not None:
        (tmp_path / INT8_META_FILE).write_text(json.dumps({"weights_sha256": digest}))
    return tmp_path


def test_an_int8_file_of_the_same_weights_is_used(tmp_path: Path) -> None:
    folder = _folder(tmp_path, None)
    (folder / INT8_META_FILE).write_text(json.dumps({"weights_sha256": weights_digest(folder)}))
    assert int8_model(folder) == b"onnx"


def test_no_int8_file_is_none(tmp_path: Path) -> None:
    (tmp_path / WEIGHTS_FILE).write_bytes(b"weights")
    assert int8_model(tmp_path) is None


@pytest.mark.parametrize("digest", ["0" * 64, None])
def test_a_stale_or_unlabelled_int8_file_is_refused_with_a_warning(
    tmp_path: Path, digest: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="overnight.models.quantize"):
        assert int8_model(_folder(tmp_path, digest)) is None
    assert "running float32" in caplog.text


def test_int8_runs_only_where_onnxruntime_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    _setting(monkeypatch, "1", "onnxruntime")
    assert int8_enabled()
    _setting(monkeypatch, "1", "tensorflow")
    assert not int8_enabled()
    _setting(monkeypatch, "0", "onnxruntime")
    assert not int8_enabled()


def test_a_quantised_unet_keeps_its_ends_float_and_predicts_close() -> None:
    import keras
    import onnx

    keras.utils.set_random_seed(0)
    config = UNetConfig(
        ndim=3, in_channels=1, out_channels=1, base_filters=8, n_levels=3, z_window_slices=4
    )
    network = build_unet(config)  # random weights: error ~3 % of the outputs' SD
    rng = np.random.default_rng(0)
    batches = [rng.gamma(1.0, 1.0, size=(1, 4, 64, 64, 1)).astype(np.float32) for _ in range(3)]
    model = export_unet(network, config)
    quantised = quantize_unet(model, batches)
    ops = {n.name: n.op_type for n in onnx.load_from_string(quantised).graph.node}
    assert all(not ops[name].startswith("QLinear") for name in float_layers(model))
    assert "QLinearConv" in ops.values()
    reference = onnx_predictor(model)(batches[0])
    out = onnx_predictor(quantised)(batches[0])
    assert out.shape == reference.shape == (1, 4, 64, 64, 1)
    rms = float(np.sqrt(np.mean((out - reference) ** 2)))
    assert rms < 0.1 * float(np.std(reference))


@pytest.mark.parametrize("kind", ["pnp", "cells"])
def test_the_shipped_int8_network_is_of_the_shipped_weights(kind: str) -> None:
    folder = resolve_model_dir("", kind)
    meta = json.loads((folder / INT8_META_FILE).read_text())
    assert meta["kind"] == kind
    assert meta["weights_sha256"] == weights_digest(folder), (
        f"models/{kind}/network.int8.onnx is stale: make quantize"
    )


def _copy_of(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / kind
    shutil.copytree(resolve_model_dir("", kind), folder)
    return folder


def _loaded_both_ways(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_type: type[Any]
) -> tuple[Any, Any]:
    """A copy of the shipped model of ``model_type`` loaded with int8 on, then off."""
    folder = _copy_of(tmp_path, "cells" if model_type is CellModel else "pnp")
    _setting(monkeypatch, "1")
    int8 = model_type.load(folder)
    _setting(monkeypatch, "0")
    plain = model_type.load(folder)
    assert int8.int8 and not plain.int8
    return int8, plain


def test_the_pnp_model_loads_int8_by_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    int8, plain = _loaded_both_ways(monkeypatch, tmp_path, PnpModel)
    volume = np.random.default_rng(1).gamma(1.0, 0.3, size=(12, 64, 64)).astype(np.float32)
    volume[6, 30:33, 30:33] += 3.0
    np.testing.assert_allclose(int8.density(volume), plain.density(volume), atol=0.5)


def test_retrained_weights_load_float32(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = _copy_of(tmp_path, "pnp")
    weights = folder / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes() + b"\0")  # any change of the file: another digest
    _setting(monkeypatch, "1")
    assert int8_model(folder) is None


def test_the_cell_model_loads_int8_by_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    int8, plain = _loaded_both_ways(monkeypatch, tmp_path, CellModel)
    yy, xx = np.mgrid[:96, :96]
    image = ((yy - 48) ** 2 + (xx - 40) ** 2 < 20**2).astype(np.float32)  # one bright disc
    image += np.random.default_rng(2).normal(0, 0.05, image.shape).astype(np.float32)
    probs_int8, _ = int8.probabilities(image)
    probs_plain, _ = plain.probabilities(image)
    assert np.mean(np.argmax(probs_int8, -1) == np.argmax(probs_plain, -1)) > 0.98
    assert float(np.mean(np.abs(probs_int8 - probs_plain))) < 0.02  # edge pixels differ most


def test_a_cell_model_whose_classifier_reads_features_is_not_quantised(tmp_path: Path) -> None:
    folder = _copy_of(tmp_path, "cells")
    config = json.loads((folder / "config.json").read_text())
    config["type_network_features"] = True
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(QuantizeError, match="features"):
        write_int8_model(folder)
