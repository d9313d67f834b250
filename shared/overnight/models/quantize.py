"""Static int8 quantisation of an exported U-Net for ONNX Runtime, and its shipped artefacts.

A particle (PNP) or cell model folder may hold ``network.int8.onnx``: the network of its
``weights.weights.h5`` exported (:func:`overnight.models.onnx_export.export_unet`) and quantised
statically by ONNX Runtime (QOperator format: ``QLinearConv`` with per-channel int8 weights and
uint8 activations, ranges calibrated on inputs drawn from the **training** generator's ranges,
:data:`overnight.synth.ranges.TRAINING_RANGES`, never the hold-out seeds): the PNP network by
min/max on 4 fields; the cell network by the 99.99th percentile on 8 fields — min/max ranges
left dim fields too few levels (on tuning draws, seeds 5552026, 6662026 and 6672026, the
percentile kept the float32 network's cells best: 99.3-99.6 % of them matched against
99.0-99.3 % with min/max, whose dim-field cell F1 fell 0.9966 → 0.9921).
The weights use 7 of the 8 bits (``reduce_range``): on AVX2 CPUs without VNNI, ONNX Runtime's
uint8×int8 kernel (``vpmaddubsw``) sums pairs of products in int16, which 8-bit weights can
saturate and 7-bit ones cannot (255·64·2 < 2¹⁵), so CPUs without VNNI compute the integer
products exactly, as the AVX-512 VNNI CPU the accuracy was measured on did.
The first convolution (it reads the raw normalised input) and the head with its activation
(the density that spot extraction thresholds, the class probabilities that seed the
watershed) stay float32:
~4 % of the PNP network's FLOPs, ~1 % of the cell network's.

Beside it ``network.int8.json`` records the SHA-256 of the weights it came from;
:func:`int8_model` refuses (returns None, with a warning) a file whose digest differs, so a
model retrained with ``overnight train`` never runs on stale int8 weights. Rebuild with::

    python -m overnight.models.quantize models/pnp models/cells     # or: make quantize

Whether the models load it is ``OVERNIGHT_INFERENCE_INT8`` (:class:`ModelSettings`);
it only applies where ONNX Runtime runs the networks. A cell model whose type classifier reads
the network's features is not quantised (its features would change under the classifier).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from overnight.errors import OvernightError
from overnight.models.config import CellModelConfig, PnpModelConfig
from overnight.models.onnx_export import INPUT_NAME

logger = logging.getLogger(__name__)

INT8_FILE = "network.int8.onnx"
INT8_META_FILE = "network.int8.json"
#: Seed of the calibration fields: none of the hold-out (7772026, 8882026), robustness
#: (5152026) or tuning (4242-4246) seeds.
CALIBRATION_SEED = 14_2026
Calibration = Literal["minmax", "percentile"]
#: Calibration fields per model kind (one network input each).
CALIBRATION_FIELDS = {"pnp": 4, "cells": 8}
#: How each kind's activation ranges are calibrated: "minmax" or "percentile".
CALIBRATION_METHODS: dict[str, Calibration] = {"pnp": "minmax", "cells": "percentile"}
#: The percentile of each activation's values its range ends at (``"percentile"``).
CALIBRATION_PERCENTILE = 99.99


class QuantizeError(OvernightError):
    """The network could not be quantised (no calibration input, not an exported U-Net)."""


def float_layers(model_bytes: bytes) -> list[str]:
    """Names of the nodes kept in float32: the first convolution, the head and its activation.

    A quantised softmax would hand on probabilities in steps of 1/256 from clipped logits.

    Raises
    ------
    QuantizeError
        ``model_bytes`` has no ``Conv`` node named ``down0_conv1_*`` or ``head_*``.
    """
    import onnx

    nodes = onnx.load_from_string(model_bytes).graph.node
    convs = [n.name for n in nodes if n.op_type == "Conv"]
    keep = [n for n in convs if n.startswith(("down0_conv1_", "head_"))]
    if len(keep) != 2:
        raise QuantizeError(f"expected a first convolution and a head among {convs}")
    head_activation = [
        n.name for n in nodes if n.op_type in ("Softmax", "Softplus") and n.name.startswith("head_")
    ]
    return keep + head_activation


def calibration_batches(
    config: PnpModelConfig | CellModelConfig, n_fields: int, seed: int = CALIBRATION_SEED
) -> list[np.ndarray]:
    """Calibration inputs: what the model feeds its network on ``n_fields`` fields.

    The fields are 512² px, drawn from the training ranges with ``seed``; each batch is one
    tile (and z window) of the network's input: ``(1, K, Y, X, 1)`` float32 for the PNP
    network, the normalised focus projection ``(1, Y, X, 1)`` for the cell network.
    """
    from overnight.models.cells import cell_input
    from overnight.models.pnp import pnp_input, pnp_scale
    from overnight.models.tiling import predict_tiled, predict_z_windows
    from overnight.synth.field import draw_field
    from overnight.synth.ranges import TRAINING_RANGES

    batches: list[np.ndarray] = []

    def record(batch: np.ndarray) -> np.ndarray:
        batches.append(np.ascontiguousarray(batch, np.float32))
        return np.zeros((*batch.shape[:-1], config.unet.out_channels), np.float32)

    def tiled(image: np.ndarray) -> np.ndarray:
        (out,) = predict_tiled(
            record,
            image[..., None],
            config.tile_px,
            config.tile_overlap_px,
            config.unet.size_multiple_px,
        )
        return out[..., 0]

    rng = np.random.default_rng(seed)
    for _ in range(n_fields):
        field = draw_field(rng, 512, TRAINING_RANGES)
        channel = field.image[:, config.channel_index].astype(np.float32)
        if isinstance(config, CellModelConfig):
            tiled(cell_input(channel, config))
        else:
            normalised = pnp_input(channel, pnp_scale(channel))
            predict_z_windows(tiled, normalised, config.unet.z_window_slices)
    if not batches:
        raise QuantizeError("no calibration input")
    return batches


def quantize_unet(
    model_bytes: bytes, batches: list[np.ndarray], method: Calibration = "minmax"
) -> bytes:
    """``model_bytes`` (an exported U-Net) quantised statically to int8, as ONNX bytes.

    QOperator format, per-channel int8 weights (7-bit range, no int16 saturation on AVX2),
    uint8 activations with ranges calibrated on ``batches`` by ``method`` (``"minmax"`` or
    ``"percentile"``: :data:`CALIBRATION_PERCENTILE`); :func:`float_layers` stay float32.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[np.ndarray] = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    with tempfile.TemporaryDirectory(prefix="overnight-int8-") as tmp:
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(model_bytes)
        quantize_static(
            str(source),
            str(target),
            Reader(),
            quant_format=QuantFormat.QOperator,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=float_layers(model_bytes),
            calibrate_method=(
                CalibrationMethod.Percentile if method == "percentile" else CalibrationMethod.MinMax
            ),
            extra_options={"CalibPercentile": CALIBRATION_PERCENTILE},
        )
        return target.read_bytes()


def int8_model(model_dir: Path) -> bytes | None:
    """The folder's int8 network if it was made from the folder's current weights, else None.

    A missing file is None silently; a file without its sidecar or whose weights digest
    differs from ``weights.weights.h5`` is refused with a warning (rebuild it with
    ``python -m overnight.models.quantize <folder>``).
    """
    from overnight.models.registry import weights_digest

    path, meta = Path(model_dir) / INT8_FILE, Path(model_dir) / INT8_META_FILE
    if not path.is_file():
        return None
    try:
        recorded = json.loads(meta.read_text())["weights_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("%s: no weights digest in %s; running float32", path, meta.name)
        return None
    if recorded != weights_digest(model_dir):
        logger.warning(
            "%s was made from other weights (sha256 %s…); running float32. "
            "Rebuild: python -m overnight.models.quantize %s",
            path,
            str(recorded)[:12],
            model_dir,
        )
        return None
    return path.read_bytes()


def write_int8_model(
    model_dir: Path, n_fields: int | None = None, seed: int = CALIBRATION_SEED
) -> Path:
    """Quantise the PNP or cell model of ``model_dir``; write ``network.int8.onnx`` + sidecar.

    ``n_fields``: calibration fields (default :data:`CALIBRATION_FIELDS` of the model's kind).

    Raises
    ------
    QuantizeError
        ``model_dir`` holds no particle or cell model, or a cell model whose classifier reads
        the network's features.
    """
    import onnxruntime

    from overnight.models.config import load_config
    from overnight.models.loading import load_network
    from overnight.models.onnx_export import export_unet
    from overnight.models.registry import weights_digest

    model_dir = Path(model_dir)
    try:
        config = load_config(model_dir)
        if isinstance(config, CellModelConfig):
            network = load_network(model_dir, CellModelConfig)[1]
        else:
            network = load_network(model_dir, PnpModelConfig)[1]
    except OvernightError as exc:
        raise QuantizeError(f"{model_dir}: not a particle or cell model ({exc})") from exc
    if isinstance(config, CellModelConfig) and config.type_network_features:
        raise QuantizeError(
            f"{model_dir}: its type classifier reads the network's features; int8 would change "
            "them under it — keep this model float32"
        )
    n_fields = n_fields or CALIBRATION_FIELDS[config.kind]
    method = CALIBRATION_METHODS[config.kind]
    batches = calibration_batches(config, n_fields, seed)
    model = quantize_unet(export_unet(network, config.unet), batches, method)
    path = model_dir / INT8_FILE
    path.write_bytes(model)
    meta = {
        "weights_sha256": weights_digest(model_dir),
        "format": "ONNX Runtime static quantisation, QOperator, per-channel int8 weights "
        "(7-bit range), uint8 activations; first convolution and head float32",
        "kind": config.kind,
        "calibration": {
            "generator": "overnight.synth draw_field, TRAINING_RANGES, 512 px",
            "fields": n_fields,
            "seed": seed,
            "batches": len(batches),
            "method": method + (f" {CALIBRATION_PERCENTILE}" if method == "percentile" else ""),
        },
        "onnxruntime": onnxruntime.__version__,
        "command": f"python -m overnight.models.quantize {model_dir}",
    }
    (model_dir / INT8_META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m overnight.models.quantize MODEL_DIR…``: write each folder's int8 network."""
    parser = argparse.ArgumentParser(
        description="Quantise trained particle/cell networks to int8 for ONNX Runtime: writes "
        "network.int8.onnx and network.int8.json (weights digest, calibration) into each folder."
    )
    parser.add_argument("model_dirs", type=Path, nargs="+", help="model folders (models/pnp)")
    parser.add_argument(
        "--fields",
        type=int,
        default=None,
        help=f"calibration fields (default per kind: {CALIBRATION_FIELDS})",
    )
    parser.add_argument("--seed", type=int, default=CALIBRATION_SEED)
    args = parser.parse_args(argv)
    for model_dir in args.model_dirs:
        path = write_int8_model(model_dir, args.fields, args.seed)
        print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
