"""Seconds per training step of each shipped network, float32 against bfloat16 mixed precision.

``python -m bench.training_speed`` → ``bench/results/training_speed.json``. One step is one
batch of the model's own training config (size, patch), forward and backward, timed after two
warm-up steps (median of ``--repeats``). Mixed precision pays only where the CPU multiplies
bfloat16 natively (``native_bfloat16``): it is timed anyway, to show what it costs elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.models_speed import cpu_model, sgemm_gflops
from overnight.models.config import TrainConfig, UNetConfig

RESULTS = Path(__file__).parent / "results" / "training_speed.json"


def step_seconds(
    unet: UNetConfig, train: TrainConfig, loss: str, policy: str | None, repeats: int
) -> float:
    """Median seconds of one training step of ``unet`` on random batches of ``train``'s size."""
    import keras

    from overnight.models.unet import build_unet

    network = build_unet(unet, dtype_policy=policy)
    network.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, jit_compile=False)
    rng = np.random.default_rng(0)
    spatial: tuple[int, ...] = (train.patch_yx_px,) * 2
    if unet.ndim == 3:
        spatial = (train.patch_z_slices, *spatial)
    x = rng.random((train.batch_size, *spatial, 1), dtype=np.float32)
    y: np.ndarray = (
        rng.integers(0, unet.out_channels, (train.batch_size, *spatial))
        if unet.out_channels > 1  # class indices for the softmax models
        else rng.random((train.batch_size, *spatial, 1), dtype=np.float32)  # a density
    )
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        network.train_on_batch(x, y)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from overnight.models.config import CellModelConfig, PnpModelConfig
    from overnight.models.presets import nuclei_config
    from overnight.models.training import native_bfloat16

    models = {
        "cells": (CellModelConfig(), "sparse_categorical_crossentropy"),
        "pnp": (PnpModelConfig(), "mean_squared_error"),
        "nuclei-dsb2018": (nuclei_config(), "sparse_categorical_crossentropy"),
    }
    rows: dict[str, dict[str, Any]] = {}
    result: dict[str, Any] = {
        "cpu_cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "sgemm_gflops": round(sgemm_gflops(), 1),
        "native_bfloat16": native_bfloat16(),
        "models": rows,
    }
    for name, (config, loss) in models.items():
        fp32 = step_seconds(config.unet, config.train, loss, None, args.repeats)
        bf16 = step_seconds(config.unet, config.train, loss, "mixed_bfloat16", args.repeats)
        epoch_steps = config.train.steps_per_epoch
        rows[name] = {
            "batch": config.train.batch_size,
            "float32_step_s": round(fp32, 3),
            "mixed_bfloat16_step_s": round(bf16, 3),
            "speedup": round(fp32 / bf16, 2),
            "epochs": config.train.epochs,
            "float32_epoch_s": round(fp32 * epoch_steps, 1),
            "mixed_bfloat16_epoch_s": round(bf16 * epoch_steps, 1),
        }
        print(name, rows[name], flush=True)
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
