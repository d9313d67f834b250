"""2048² fields: tiled inference keeps the accuracy of 512² fields, in bounded memory.

Draws ``--fields`` fields of 2048² px and the same number of 512² px fields from the same
ranges (default: the dim end of the imaging model, body 10–40 ADU, where tiling artefacts would
show first), runs ``overnight run`` (learned pipeline) on each set in a child process, and
reports the metrics of both and the child's peak RSS. Writes ``bench/results/large_field.json``
and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.accuracy import RESULTS, _clean

SEED = 626_2026  # never used for training, tuning or other hold-outs


_MEASURE = (
    "import resource, subprocess, sys; "
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def run_child(images: Path, out: Path) -> dict[str, float]:
    """``overnight run`` in a fresh child process: seconds and its peak RSS (GB)."""
    start = time.perf_counter()
    overnight = Path(sys.executable).with_name("overnight")  # the console script of this venv
    command = [str(overnight), "run", str(images), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command, "--workers", "1", "--force"],
        check=True,
        capture_output=True,
        text=True,
    )
    peak_kb = int(done.stdout.strip().splitlines()[-1])
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_gb": round(peak_kb / 1024**2, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fields", type=int, default=2)
    parser.add_argument("--body-adu", type=float, nargs=2, default=(10.0, 40.0))
    args = parser.parse_args()

    from overnight.evaluation import score_dataset
    from overnight.synth.cytometry import write_dataset
    from overnight.synth.ranges import CytometryRanges

    ranges = CytometryRanges(cell_signal_adu=tuple(args.body_adu))
    report: dict[str, Any] = {"seed": SEED, "n_fields": args.fields, "body_adu": args.body_adu}
    with tempfile.TemporaryDirectory(prefix="overnight-large-") as scratch:
        root = Path(scratch)
        for size in (2048, 512):
            data = root / f"f{size}"
            write_dataset(data, args.fields, SEED, size, ranges)
            run = run_child(data / "images", data / "out")
            metrics = score_dataset(data, data / "out").summary()
            report[str(size)] = {
                "run": run,
                "metrics": {k: _clean(v) for k, v in metrics.items()},
            }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "large_field.json").write_text(json.dumps(report, indent=2) + "\n")
    big, small = report["2048"], report["512"]
    lines = [
        "# 2048² fields against 512² fields of the same ranges (learned pipeline)",
        "",
        f"{args.fields} fields each, seed {SEED}, body {args.body_adu[0]:g}–{args.body_adu[1]:g}"
        " ADU. Reproduce: `python -m bench.large_field`.",
        "",
        "| metric | 2048² | 512² |",
        "| --- | --- | --- |",
    ]
    for key in ("cell_f1", "mean_iou", "type_accuracy", "count_mae", "pnp_f1"):
        lines.append(f"| {key} | {big['metrics'][key]:.4f} | {small['metrics'][key]:.4f} |")
    lines += [
        f"| peak RSS (GB, whole `overnight run`) | {big['run']['peak_rss_gb']} | "
        f"{small['run']['peak_rss_gb']} |",
        f"| seconds | {big['run']['seconds']} | {small['run']['seconds']} |",
        "",
    ]
    (RESULTS / "large_field.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
