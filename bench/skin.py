"""Skin-PK speed: time per timepoint stack (read, segment every plane, measure), CPU.

Writes synthetic series (one per size: 512² × 8 depths and 1024² × 12 depths, the model's
largest) and times each stage of :func:`overnight.skin.pipeline.analyse_timepoint` on every
timepoint after one warm-up. JSON to ``bench/results/skin.json``; medians are quoted (the
machines here are shared and noisy; the load average is recorded).

    python -m bench.skin [--timepoints 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
CASES = ((512, 8), (1024, 12))


def time_case(folder: Path, model: Any) -> dict[str, Any]:
    """Median seconds per stack and per stage over the timepoints of the series in ``folder``."""
    from overnight.analysis.profiles import drug_profiles, estimate_background
    from overnight.models.skin import segment_stack
    from overnight.skin.series import find_series, read_timepoint

    series = find_series(folder)
    stages: dict[str, list[float]] = {"read_s": [], "segment_s": [], "measure_s": [], "total_s": []}
    first = series.timepoints[0]
    segment_stack(model, read_timepoint(first), first.depths_um)  # warm-up (tf.function trace)
    for tp in series.timepoints:
        t0 = time.perf_counter()
        stack = read_timepoint(tp)
        t1 = time.perf_counter()
        labels = segment_stack(model, stack, tp.depths_um)
        t2 = time.perf_counter()
        drug_profiles(
            stack[:, 1],
            labels,
            time_min=tp.time_min,
            depths_um=tp.depths_um,
            compartments=model.config.compartments,
        )
        estimate_background(stack[:, 1, ::2, ::2])
        t3 = time.perf_counter()
        for key, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
            stages[key].append(value)
    shape = read_timepoint(series.timepoints[0]).shape
    medians = {key: round(statistics.median(values), 3) for key, values in stages.items()}
    return {
        "stack_zcyx": list(shape),
        "timepoints": len(series.timepoints),
        **medians,
        "s_per_plane": round(medians["total_s"] / shape[0], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timepoints", type=int, default=4)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()

    from overnight.models.skin import load_skin_model
    from overnight.synth.skin import write_skin_dataset

    model = load_skin_model(args.model)
    cases = []
    with tempfile.TemporaryDirectory(prefix="skin-bench-") as scratch:
        for size, n_depths in CASES:
            folder = Path(scratch) / f"s{size}"
            write_skin_dataset(
                folder, 99, size=size, n_depths=n_depths, n_timepoints=args.timepoints
            )
            case = time_case(folder, model)
            print(
                f"{size}² × {n_depths}: {case['total_s']:.2f} s per stack "
                f"(read {case['read_s']:.2f}, segment {case['segment_s']:.2f}, "
                f"measure {case['measure_s']:.2f})"
            )
            cases.append(case)
    report = {
        "benchmark": "skin-pk time per timepoint stack",
        "model": model.version,
        "cases": cases,
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs",
        "load_average_1m": os.getloadavg()[0],
        "command": f"python -m bench.skin --timepoints {args.timepoints}",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "skin.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
