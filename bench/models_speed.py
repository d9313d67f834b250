"""Inference time and FLOPs of the shipped models per field (512², 12 Z, 2 channels).

``python -m bench.models_speed`` → ``bench/results/models_speed.json``. Times the networks
through their compiled predictors (tiled as in the pipeline) and the whole learned steps
(projection, watershed, spot extraction), after one warm-up call, on this machine's CPU
(and GPU where TensorFlow sees one). The CPU model and a float32 matrix-product speed are
recorded beside the times, since machines of the same core count differ several-fold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "models_speed.json"


def _best_of(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sgemm_gflops(n: int = 2000, repeats: int = 5) -> float:
    """This machine's float32 matrix-product speed (GFLOP/s): the yardstick between machines."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    return 2 * n**3 / _best_of(lambda: a @ a, repeats) / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--slices", type=int, default=12)
    args = parser.parse_args()

    import tensorflow as tf

    from overnight.models.cells import CellModel, cell_input
    from overnight.models.loading import resolve_model_dir
    from overnight.models.pnp import PnpModel, pnp_input, pnp_scale
    from overnight.models.unet import count_flops
    from overnight.synth.cytometry import draw_field

    field = draw_field(np.random.default_rng(12), args.size)
    image = field.image.astype(np.float32)
    z = image.shape[0]
    if z < args.slices:  # the reference field has 12 slices: repeat edge slices if fewer were drawn
        image = np.concatenate([image, np.repeat(image[-1:], args.slices - z, axis=0)])
    image = image[: args.slices]
    cells = CellModel.load(resolve_model_dir("", "cells"))
    pnps = PnpModel.load(resolve_model_dir("", "pnp"))
    cell_x = cell_input(image[:, 0], cells.config)
    pnp_x = pnp_input(image[:, 1], pnp_scale(image[:, 1]))
    cells.probabilities(cell_x)
    pnps.density(pnp_x)
    cell_net = _best_of(lambda: cells.probabilities(cell_x), args.repeats)
    pnp_net = _best_of(lambda: pnps.density(pnp_x), args.repeats)
    cell_step = _best_of(lambda: cells.segment(image[:, 0]), args.repeats)
    pnp_step = _best_of(lambda: pnps.detect(image[:, 1]), args.repeats)
    yx = (args.size, args.size)
    result = {
        "field": {"z": args.slices, "c": 2, "y": args.size, "x": args.size},
        "device": "gpu" if tf.config.list_physical_devices("GPU") else "cpu",
        "cpu_cores": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "sgemm_gflops": round(sgemm_gflops(), 1),
        "cell_network_s": round(cell_net, 3),
        "pnp_network_s": round(pnp_net, 3),
        "networks_total_s": round(cell_net + pnp_net, 3),
        "cell_model_with_postprocessing_s": round(cell_step, 3),
        "pnp_model_with_postprocessing_s": round(pnp_step, 3),
        "models_total_s": round(cell_step + pnp_step, 3),
        "cell_network_gflop": round(count_flops(cells.config.unet, yx) / 1e9, 2),
        "pnp_network_gflop": round(count_flops(pnps.config.unet, (args.slices, *yx)) / 1e9, 2),
        "target_s": 2.0,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
