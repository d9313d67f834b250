"""Inference time and FLOPs of the shipped models per field (512², 12 Z, 2 channels).

``python -m bench.models_speed`` → ``bench/results/models_speed.json`` and ``.md``
(``--threads 1``: TensorFlow on one core, as each of 2 workers on 2 cores; written to
``models_speed-1thread.json``; ``--isa AVX2``: oneDNN, OpenBLAS and NumPy limited to
AVX2 kernels, as on a CPU without AVX-512 or AMX, see ``bench.pipeline_speed.isa_env``;
written to ``models_speed[-1thread]-avx2.json``). Times the networks
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "models_speed.json"


def _best_of(fn: Callable[[], object], repeats: int) -> float:
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


def markdown(result: dict[str, Any]) -> str:
    """The result as a short Markdown page."""
    f = result["field"]
    rows = [
        (
            "cell network",
            result["cell_network_s"],
            result["cell_network_gflop"],
            result["cell_network_gflop_per_s"],
        ),
        (
            "PNP network",
            result["pnp_network_s"],
            result["pnp_network_gflop"],
            result["pnp_network_gflop_per_s"],
        ),
    ]
    lines = [
        "# Model inference speed (`python -m bench.models_speed`)",
        "",
        f"Field {f['y']}×{f['x']} px, {f['z']} Z, {f['c']} channels; {result['cpu_model']}, "
        f"{result['cpu_cores']} cores, TensorFlow intra-op threads {result['tf_threads']}, "
        f"oneDNN ISA {result.get('onednn_isa', 'native')}; "
        f"float32 matrix product {result['sgemm_gflops']} GFLOP/s "
        f"({result['sgemm_gflops_1_thread']} on one thread); load average "
        f"{result['load_average_1min']}. Best of {result['repeats']}.",
        "",
        "| network | s | GFLOP | GFLOP/s | share of the matrix-product speed |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, seconds, gflop, rate in rows:
        share = round(rate / result["sgemm_gflops"], 2)
        lines.append(f"| {name} | {seconds} | {gflop} | {rate} | {share} |")
    if "by_runtime" in result:
        lines += [
            "",
            f"The pipeline runs the networks on **{result['runtime']}** "
            "(`OVERNIGHT_INFERENCE_RUNTIME`, `overnight.models.runtime`); each runtime on the "
            "same input, taking turns:",
            "",
            "| runtime | cell network s | PNP network s | both s | TensorFlow / this |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, t in result["by_runtime"].items():
            lines.append(
                f"| {name} | {t['cell_network_s']} | {t['pnp_network_s']} | "
                f"{t['networks_total_s']} | {t['ratio_to_tensorflow']} |"
            )
    lines += [
        "",
        f"With post-processing: cells {result['cell_model_with_postprocessing_s']} s, "
        f"PNPs {result['pnp_model_with_postprocessing_s']} s "
        f"(PNP spot extraction alone {result['pnp_extraction_s']} s).",
    ]
    return "\n".join(lines) + "\n"


def _sgemm_one_thread() -> float:
    """:func:`sgemm_gflops` in a subprocess limited to one BLAS thread."""
    import subprocess
    import sys

    code = "from bench.models_speed import sgemm_gflops; print(sgemm_gflops())"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def _networks_by_runtime(
    image: np.ndarray, repeats: int
) -> tuple[dict[str, dict[str, float]], dict[str, tuple[Any, Any]]]:
    """Best-of seconds of the cell and PNP networks on each runtime installed, alternating;
    and the (cell, PNP) models loaded for each runtime.

    The runtimes take turns in every repeat, so that both see the same machine load.
    """
    from overnight.models.cells import CellModel, cell_input
    from overnight.models.loading import model_settings, resolve_model_dir
    from overnight.models.pnp import PnpModel, pnp_input, pnp_scale
    from overnight.models.runtime import RUNTIME_ENV, onnxruntime_installed

    runtimes = ["tensorflow"] + (["onnxruntime"] if onnxruntime_installed() else [])
    setting = os.environ.get(RUNTIME_ENV)
    models = {}
    for runtime in runtimes:
        os.environ[RUNTIME_ENV] = runtime
        model_settings.cache_clear()
        models[runtime] = (
            CellModel.load(resolve_model_dir("", "cells")),
            PnpModel.load(resolve_model_dir("", "pnp")),
        )
    if setting is None:
        os.environ.pop(RUNTIME_ENV)
    else:
        os.environ[RUNTIME_ENV] = setting
    model_settings.cache_clear()
    cells, _ = models["tensorflow"]
    cell_x = cell_input(image[:, 0], cells.config)
    pnp_x = pnp_input(image[:, 1], pnp_scale(image[:, 1]))
    times: dict[str, dict[str, list[float]]] = {r: {"cell": [], "pnp": []} for r in runtimes}
    for repeat in range(repeats + 1):  # the first round warms up
        for runtime, (cell_model, pnp_model) in models.items():
            for key, run, x in (
                ("cell", cell_model.probabilities, cell_x),
                ("pnp", pnp_model.density, pnp_x),
            ):
                start = time.perf_counter()
                run(x)
                if repeat:
                    times[runtime][key].append(time.perf_counter() - start)
    best = {
        runtime: {
            "cell_network_s": round(min(t["cell"]), 3),
            "pnp_network_s": round(min(t["pnp"]), 3),
            "networks_total_s": round(min(t["cell"]) + min(t["pnp"]), 3),
        }
        for runtime, t in times.items()
    }
    return best, models


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--slices", type=int, default=12)
    parser.add_argument(
        "--threads", type=int, default=0, help="TensorFlow intra-op threads (0 = one per core)"
    )
    parser.add_argument(
        "--isa", default="", help="ONEDNN_MAX_CPU_ISA, e.g. AVX2 ('' = the CPU's own)"
    )
    args = parser.parse_args()
    if args.isa and os.environ.get("ONEDNN_MAX_CPU_ISA") != args.isa:
        import sys

        from bench.pipeline_speed import isa_env

        # read when the libraries load (NumPy is loaded already): start again with them set
        argv = [sys.executable, "-m", "bench.models_speed", *sys.argv[1:]]
        os.execve(sys.executable, argv, {**os.environ, **isa_env(args.isa)})

    import tensorflow as tf

    if args.threads:
        from overnight.models.threads import limit_blas_threads

        os.environ["TF_NUM_INTRAOP_THREADS"] = str(args.threads)  # ONNX Runtime's too
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        limit_blas_threads(args.threads)  # the post-processing's matrix products too

    from overnight.models.pnp import extract_spots, pnp_input, pnp_scale
    from overnight.models.runtime import inference_runtime
    from overnight.models.unet import count_flops
    from overnight.synth.cytometry import draw_field

    field = draw_field(np.random.default_rng(12), args.size)
    image = field.image.astype(np.float32)
    z = image.shape[0]
    if z < args.slices:  # the reference field has 12 slices: repeat edge slices if fewer were drawn
        image = np.concatenate([image, np.repeat(image[-1:], args.slices - z, axis=0)])
    image = image[: args.slices]
    runtime = inference_runtime()
    by_runtime, models = _networks_by_runtime(image, args.repeats)
    cells, pnps = models[runtime]
    pnp_x = pnp_input(image[:, 1], pnp_scale(image[:, 1]))
    cell_net = by_runtime[runtime]["cell_network_s"]
    pnp_net = by_runtime[runtime]["pnp_network_s"]
    cell_step = _best_of(lambda: cells.segment(image[:, 0]), args.repeats)
    pnp_step = _best_of(lambda: pnps.detect(image[:, 1]), args.repeats)
    density = pnps.density(pnp_x) * np.float32(pnps.config.density_gain)
    background = pnp_scale(image[:, 1]).background_adu
    extraction = _best_of(
        lambda: extract_spots(
            density, image[:, 1] - background, pnps.config, pnps.multiplicity, pnp_x
        ),
        args.repeats,
    )
    yx = (args.size, args.size)
    cell_gflop = count_flops(cells.config.unet, yx) / 1e9
    pnp_gflop = count_flops(pnps.config.unet, (args.slices, *yx)) / 1e9
    result = {
        "field": {"z": args.slices, "c": 2, "y": args.size, "x": args.size},
        "device": "gpu" if tf.config.list_physical_devices("GPU") else "cpu",
        "cpu_cores": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "sgemm_gflops": round(sgemm_gflops(), 1),
        "sgemm_gflops_1_thread": round(_sgemm_one_thread(), 1),
        "tf_threads": args.threads or os.cpu_count(),
        "runtime": runtime,
        "by_runtime": {
            name: {
                **times,
                "ratio_to_tensorflow": round(
                    by_runtime["tensorflow"]["networks_total_s"] / times["networks_total_s"], 2
                ),
            }
            for name, times in by_runtime.items()
        },
        "repeats": args.repeats,
        "cell_network_s": round(cell_net, 3),
        "pnp_network_s": round(pnp_net, 3),
        "networks_total_s": round(cell_net + pnp_net, 3),
        "cell_model_with_postprocessing_s": round(cell_step, 3),
        "pnp_model_with_postprocessing_s": round(pnp_step, 3),
        "models_total_s": round(cell_step + pnp_step, 3),
        "pnp_extraction_s": round(extraction, 3),
        "cell_network_gflop": round(cell_gflop, 2),
        "pnp_network_gflop": round(pnp_gflop, 2),
        "cell_network_gflop_per_s": round(cell_gflop / cell_net, 1),
        "pnp_network_gflop_per_s": round(pnp_gflop / pnp_net, 1),
        "pnp_network": pnps.config.unet.model_dump(),
        "onednn_isa": args.isa or "native",
        "target_s": 1.0,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    stem = "models_speed" + (f"-{args.threads}thread" if args.threads else "")
    path = RESULTS.with_name(stem + (f"-{args.isa.lower()}" if args.isa else ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    path.with_suffix(".md").write_text(markdown(result))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
