"""Embedded-run benchmark: 24 fields (512², 12 Z, 2 channels) with 1 and 2 worker processes.

Reports images/min, MB/s read, peak RSS and median time per step; JSON to
``bench/results/embedded.json``. Each configuration runs in a fresh subprocess so peak RSS is
its own, and is repeated; medians are quoted (the machines here are noisy).

    python -m bench.embedded [--fields 24] [--repeats 3] [--pipeline cytometry]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def make_dataset(folder: Path, n_fields: int, seed: int = 2024) -> list[Path]:
    """The benchmark's fields: 512², exactly 12 slices, otherwise the full imaging model."""
    from overnight.synth.cytometry import write_dataset
    from overnight.synth.ranges import CytometryRanges

    return write_dataset(folder, n_fields, seed, size=512, ranges=CytometryRanges(n_z=(12, 12)))


def one_run(images: Path, out: Path, workers: int, pipeline: str) -> dict[str, object]:
    """Analyse ``images`` once in this process (called in a fresh subprocess)."""
    from overnight.imaging import find_images
    from overnight.pipeline.batch import BatchOptions, run_batch

    paths = find_images(images)
    start = time.perf_counter()
    outcomes = run_batch(
        paths, BatchOptions(pipeline=pipeline, out_url=str(out), force=True), workers
    )
    wall = time.perf_counter() - start
    failed = [o.image_id for o in outcomes if o.status != "done"]
    steps: dict[str, list[float]] = {}
    for o in outcomes:
        for name, seconds in o.step_timings_s.items():
            steps.setdefault(name, []).append(seconds)
    rss_kib = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    return {
        "wall_s": wall,
        "images": len(paths),
        "failed": failed,
        "bytes_read": sum(o.bytes_read for o in outcomes),
        "peak_rss_mib": rss_kib / 1024,
        "step_median_s": {k: statistics.median(v) for k, v in steps.items()},
        "seconds_per_image_median": statistics.median(o.seconds for o in outcomes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fields", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pipeline", default="cytometry")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--_child",
        nargs=4,
        metavar=("IMAGES", "OUT", "WORKERS", "PIPELINE"),
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()
    if args._child:
        images, out, workers, pipeline = args._child
        print(json.dumps(one_run(Path(images), Path(out), int(workers), pipeline)))
        return

    with tempfile.TemporaryDirectory(prefix="overnight-bench-") as tmp:
        data = Path(tmp) / "data"
        make_dataset(data, args.fields)
        report: dict[str, object] = {
            "benchmark": "embedded run",
            "dataset": f"{args.fields} synthetic fields, 512x512, 12 Z, 2 channels, uint16",
            "pipeline": args.pipeline,
            "machine": {
                "cpus": len(__import__("os").sched_getaffinity(0)),
                "python": platform.python_version(),
            },
            "configurations": {},
        }
        for workers in args.workers:
            runs = []
            for repeat in range(args.repeats):
                out = Path(tmp) / f"out-{workers}-{repeat}"
                child = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.embedded",
                        "--_child",
                        str(data / "images"),
                        str(out),
                        str(workers),
                        args.pipeline,
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
                print(
                    f"workers={workers} repeat={repeat}: {runs[-1]['wall_s']:.1f} s",
                    file=sys.stderr,
                )
            wall = statistics.median(r["wall_s"] for r in runs)
            mb = runs[0]["bytes_read"] / 1e6
            steps = {
                k: statistics.median(r["step_median_s"][k] for r in runs)
                for k in runs[0]["step_median_s"]
            }
            report["configurations"][str(workers)] = {
                "workers": workers,
                "repeats": len(runs),
                "wall_s_median": round(wall, 2),
                "images_per_min_median": round(60 * args.fields / wall, 1),
                "mb_per_s_read_median": round(mb / wall, 1),
                "peak_rss_mib_median": round(statistics.median(r["peak_rss_mib"] for r in runs), 1),
                "seconds_per_image_median": round(
                    statistics.median(r["seconds_per_image_median"] for r in runs), 3
                ),
                "step_median_s": {k: round(v, 4) for k, v in steps.items()},
                "failed": runs[0]["failed"],
            }
        configs = report["configurations"]
        if "1" in configs and "2" in configs:
            report["speedup_2_vs_1"] = round(
                configs["1"]["wall_s_median"] / configs["2"]["wall_s_median"], 2
            )
        report["seconds_per_image_median"] = configs[str(args.workers[0])][
            "seconds_per_image_median"
        ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "embedded.json" if args.pipeline == "cytometry" else f"embedded-{args.pipeline}.json"
    (RESULTS / name).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
