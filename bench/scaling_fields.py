"""Seconds of one field analysed cold and warm, per step: the 2048² scaling check of issue 14.

``python -m bench.scaling_fields SIZE N_Z [--repeats R] [--tile-px T] [--smoothing FILE]``
prints one JSON line: the first analysis of the field in this process (``cold``, what
``bench.pipeline_speed``'s scaling section times) and ``R`` more (``warm``), each with the
step timings, and the peak RSS. One thread (``TF_NUM_INTRAOP_THREADS``, ``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS`` = 1 unless set), the learned ``cytometry`` pipeline, the field of
:func:`bench.pipeline_speed.make_fields` (seed 77) made under ``--folder``.

- ``--tile-px``: both networks' tile side instead of their models' (``tile_px``), to measure
  a default before changing it.
- ``--smoothing``: a file that replaces :mod:`overnight.steps.smoothing` (e.g. an earlier
  version, ``git show <commit>:shared/overnight/steps/smoothing.py``), to time before/after
  in the same minutes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


def _replace_smoothing(path: Path) -> None:
    """Load ``path`` as ``overnight.steps.smoothing`` before anything imports that module."""
    spec = importlib.util.spec_from_file_location("overnight.steps.smoothing", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["overnight.steps.smoothing"] = module
    spec.loader.exec_module(module)


def _override_tile_px(tile_px: int) -> None:
    """Every model loaded from now on runs tiles of ``tile_px`` (its config's ``tile_px``)."""
    import overnight.models.loading as loading

    load_network = loading.load_network

    def patched(model_dir: Path, config_type: Any) -> tuple[Any, object]:
        config, network = load_network(model_dir, config_type)
        return config.model_copy(update={"tile_px": tile_px}), network

    loading.load_network = patched  # type: ignore[assignment]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", type=int)
    parser.add_argument("n_z", type=int)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--tile-px", type=int, default=0)
    parser.add_argument("--smoothing", type=Path)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "scaling")
    args = parser.parse_args()
    if args.smoothing:
        _replace_smoothing(args.smoothing)
    from overnight.models.threads import configure_threads

    configure_threads(1)
    if args.tile_px:
        _override_tile_px(args.tile_px)
    from bench.pipeline_speed import make_fields
    from overnight.pipeline.batch import BatchOptions, ImageAnalyser

    folder = args.folder / f"{args.size}x{args.size}x{args.n_z}"
    if not (folder / "images").is_dir():
        make_fields(folder, 1, args.size, args.n_z, 77)
    (path,) = sorted((folder / "images").iterdir())
    options = BatchOptions(
        pipeline="cytometry", out_url=str(folder / "out"), force=True, threads_per_worker=1
    )
    analyser = ImageAnalyser(options)
    runs = []
    for _ in range(1 + args.repeats):
        start = time.perf_counter()
        outcome = analyser.analyse(path)
        runs.append(
            {
                "seconds": round(time.perf_counter() - start, 3),
                "status": outcome.status,
                "n_cells": outcome.n_cells,
                "n_pnps": outcome.n_pnps,
                "steps_s": {k: round(v, 3) for k, v in outcome.step_timings_s.items()},
            }
        )
    report = {
        "size": args.size,
        "n_z": args.n_z,
        "tile_px": args.tile_px or None,
        "smoothing": str(args.smoothing) if args.smoothing else None,
        "cold": runs[0],
        "warm": runs[1:],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
