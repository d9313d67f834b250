"""``make bench``: every speed/memory benchmark, one after another; JSON under bench/results/.

Benchmarks whose module is absent in this checkout are reported and skipped.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

BENCHMARKS = (
    ("bench.embedded", []),
    ("bench.embedded", ["--pipeline", "cytometry-classical", "--workers", "1", "--repeats", "1"]),
    ("bench.models_speed", []),
    ("bench.models_speed", ["--threads", "1"]),
    ("bench.pipeline_speed", []),
    ("bench.training_speed", []),
    ("bench.stack", []),
    ("bench.qc_web", []),
    ("bench.skin", []),
)


def main() -> int:
    failures = 0
    for module, args in BENCHMARKS:
        if importlib.util.find_spec(module) is None:
            print(f"[bench] {module}: not present, skipped", file=sys.stderr)
            continue
        print(f"[bench] {module} {' '.join(args)}", file=sys.stderr)
        if subprocess.run([sys.executable, "-m", module, *args]).returncode != 0:
            failures += 1
            print(f"[bench] {module} failed", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
