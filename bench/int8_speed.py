"""float32 vs int8 network (ONNX Runtime) on one 512²×12 field, taking turns.

``python -m bench.int8_speed --threads 1 [--model cells]`` →
``bench/results/models_speed-int8[-cells][-1thread].json`` and ``.md``. The field is
``bench.models_speed``'s (``draw_field`` seed 12); each round runs the float32 and the int8
network (``models/<model>/network.int8.onnx``, see :mod:`overnight.models.quantize`) once each
through ``PnpModel.density`` (tiled and z-windowed as in the pipeline) or
``CellModel.probabilities``, so both see the same machine load. Reports best and median
seconds and how far the two outputs differ.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.models_speed import cpu_model

RESULTS = Path(__file__).parent / "results"


def _models(kind: str) -> dict[str, Any]:
    from overnight.models.cells import CellModel
    from overnight.models.loading import resolve_model_dir
    from overnight.models.pnp import PnpModel
    from overnight.models.quantize import int8_model

    folder = resolve_model_dir("", kind)
    # the process runs with OVERNIGHT_INFERENCE_INT8=0: load gives float32
    float32: Any
    int8: Any
    if kind == "cells":
        float32 = CellModel.load(folder)
        int8 = CellModel(float32.config, float32.network, float32.classifier, int8_model(folder))
    else:
        float32 = PnpModel.load(folder)
        int8 = PnpModel(float32.config, float32.network, float32.multiplicity, int8_model(folder))
    if not int8.int8 or float32.int8:
        raise SystemExit(f"models/{kind}/network.int8.onnx missing or stale: make quantize")
    return {"float32": float32, "int8": int8}


def _network_input(kind: str) -> tuple[np.ndarray, Any]:
    """The field's network input and the call that runs a model on it."""
    from overnight.models.cells import cell_input
    from overnight.models.pnp import pnp_input, pnp_scale
    from overnight.synth.cytometry import draw_field

    image = draw_field(np.random.default_rng(12), 512).image.astype(np.float32)
    image = np.concatenate([image, np.repeat(image[-1:], max(0, 12 - image.shape[0]), 0)])[:12]
    if kind == "cells":
        from overnight.models.config import CellModelConfig, load_config
        from overnight.models.loading import resolve_model_dir

        config = load_config(resolve_model_dir("", "cells"))
        assert isinstance(config, CellModelConfig)
        return cell_input(image[:, 0], config), lambda m, x: m.probabilities(x)[0]
    pnp = image[:, 1]
    return pnp_input(pnp, pnp_scale(pnp)), lambda m, x: m.density(x)


def markdown(result: dict[str, Any]) -> str:
    """The result as a short Markdown page."""
    rows = [
        f"| {name} | {t['best_s']} | {t['median_s']} | {t['speedup_best']} |"
        for name, t in result["by_precision"].items()
    ]
    return (
        f"# {result['model']} network float32 vs int8 (`python -m bench.int8_speed`)\n\n"
        f"Field 512×512 px, 12 Z (`bench.models_speed`'s); {result['cpu_model']}, ONNX Runtime "
        f"{result['onnxruntime']}, {result['threads']} intra-op thread(s); {result['rounds']} "
        f"alternating rounds after a warm-up; load average {result['load_average']} "
        "(1/5/15 min, at the end).\n\n"
        "| network | best s | median s | float32 best / this best |\n| --- | --- | --- | --- |\n"
        + "\n".join(rows)
        + f"\n\nOutput int8 − float32 on this field: max |Δ| {result['max_abs_diff']}, RMS "
        f"{result['rms_diff']} ({result['output']}).\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", choices=["pnp", "cells"], default="pnp")
    args = parser.parse_args()
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(args.threads)  # ONNX Runtime's too
    os.environ["OVERNIGHT_INFERENCE_RUNTIME"] = "onnxruntime"
    os.environ["OVERNIGHT_INFERENCE_INT8"] = "0"
    import onnxruntime

    x, run = _network_input(args.model)
    models = _models(args.model)
    times: dict[str, list[float]] = {name: [] for name in models}
    densities = {}
    for round_ in range(args.rounds + 1):  # the first round warms up
        for name, model in models.items():
            start = time.perf_counter()
            densities[name] = run(model, x)
            if round_:
                times[name].append(time.perf_counter() - start)
    best32 = min(times["float32"])
    diff = densities["int8"] - densities["float32"]
    result = {
        "model": args.model,
        "output": "class probabilities"
        if args.model == "cells"
        else "density; one particle's peak ≈ 6.3",
        "cpu_model": cpu_model(),
        "onnxruntime": onnxruntime.__version__,
        "threads": args.threads,
        "rounds": args.rounds,
        "by_precision": {
            name: {
                "best_s": round(min(t), 3),
                "median_s": round(float(np.median(t)), 3),
                "speedup_best": round(best32 / min(t), 2),
                "all_s": [round(v, 3) for v in t],
            }
            for name, t in times.items()
        },
        "max_abs_diff": round(float(np.abs(diff).max()), 3),
        "rms_diff": round(float(np.sqrt(np.mean(diff**2))), 4),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    stem = "models_speed-int8" + ("-cells" if args.model == "cells" else "")
    stem += f"-{args.threads}thread" if args.threads else ""
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
