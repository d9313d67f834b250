"""Which runtime runs a trained network's inference: ONNX Runtime on a CPU, TensorFlow on a GPU.

TensorFlow trains every network (and runs it where it sees a GPU). On a CPU, ONNX Runtime runs
the same U-Nets 1.5–1.7× faster than TensorFlow with one thread on a 2-core AVX2 AMD EPYC, with
outputs equal to 3e-6 of their scale (``bench/results/models_speed-1thread.md``): the network is
exported from its weights when the model loads (:mod:`overnight.models.onnx_export`, a few
milliseconds), so the shipped models stay Keras weight files.

``OVERNIGHT_INFERENCE_RUNTIME`` (:class:`overnight.models.loading.ModelSettings`) chooses:
``auto`` (the default: ONNX Runtime when it is installed and TensorFlow sees no GPU),
``onnxruntime`` or ``tensorflow``. Where ONNX Runtime runs, a model folder's int8 network
(:mod:`overnight.models.quantize`: the PNP and cell models' ``network.int8.onnx``) replaces
the float32 export when ``OVERNIGHT_INFERENCE_INT8`` allows it (:func:`int8_enabled`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from overnight.errors import ConfigError
from overnight.models.config import UNetConfig

Runtime = Literal["onnxruntime", "tensorflow"]
#: The setting's values; ``auto`` picks one of the other two (:func:`inference_runtime`).
RUNTIME_CHOICES = ("auto", "onnxruntime", "tensorflow")
RUNTIME_ENV = "OVERNIGHT_INFERENCE_RUNTIME"
INT8_ENV = "OVERNIGHT_INFERENCE_INT8"


def onnxruntime_installed() -> bool:
    """Whether ``onnx`` and ``onnxruntime`` (the ``models`` extra) can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def _tensorflow_sees_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def inference_runtime(setting: str | None = None) -> Runtime:
    """The runtime for ``setting`` (default: the process's ``OVERNIGHT_INFERENCE_RUNTIME``).

    Raises
    ------
    ConfigError
        An unknown value, or ``onnxruntime`` asked for but not installed.
    """
    if setting is None:
        from overnight.models.loading import model_settings

        setting = model_settings().inference_runtime
    choice = setting.strip().lower() or "auto"
    if choice not in RUNTIME_CHOICES:
        raise ConfigError(f"{RUNTIME_ENV}={choice!r} is not one of {', '.join(RUNTIME_CHOICES)}")
    if choice == "onnxruntime" and not onnxruntime_installed():
        raise ConfigError(
            f"{RUNTIME_ENV}=onnxruntime, but onnx/onnxruntime are not installed: "
            "pip install 'overnight[models]'"
        )
    if choice != "auto":
        return choice  # type: ignore[return-value]
    if not onnxruntime_installed() or _tensorflow_sees_gpu():
        return "tensorflow"
    return "onnxruntime"


def int8_enabled(setting: bool | None = None) -> bool:
    """Whether a model's int8 network may run.

    It may where ``setting`` (default: the process's ``OVERNIGHT_INFERENCE_INT8``) allows it
    and ONNX Runtime runs the networks.
    """
    if setting is None:
        from overnight.models.loading import model_settings

        setting = model_settings().inference_int8
    return bool(setting) and inference_runtime() == "onnxruntime"


def network_predictor(
    network: Any,
    unet: UNetConfig,
    with_features: bool = False,
    runtime: Runtime | None = None,
    int8_model: bytes | None = None,
) -> Callable[[np.ndarray], Any]:
    """A function running a trained ``network`` (built from ``unet``) on one batch.

    It maps ``(B, [Z,] Y, X, C_in)`` to the output (and ``features`` with ``with_features``)
    as float32 arrays, on ``runtime`` (default :func:`inference_runtime`). ONNX Runtime runs a
    copy of the weights taken now: build the predictor after training, not before.
    ``int8_model``: the serialised int8 ONNX network of the same weights
    (:func:`overnight.models.quantize.int8_model`), run instead where ONNX Runtime runs.
    """
    runtime = runtime or inference_runtime()
    if runtime == "tensorflow":
        from overnight.models.unet import compiled_predictor

        return compiled_predictor(network, with_features=with_features)
    from overnight.models.onnx_export import export_unet, onnx_predictor
    from overnight.models.threads import configured_threads

    threads = configured_threads()
    model = int8_model if int8_model is not None and not with_features else None
    # one thread spins at no cost to others; several would busy-wait on cores other
    # workers need
    return onnx_predictor(
        model or export_unet(network, unet, with_features=with_features),
        threads,
        spinning=threads == 1,
    )
