"""End-to-end speed of ``overnight run``: learned beside classical, 1 and 2 workers, scaling.

``python -m bench.pipeline_speed`` → ``bench/results/pipeline_speed.json`` and ``.md``.

- The same 24 fields (512², 12 Z, 2 channels: the reference field) analysed by the default
  ``cytometry`` pipeline and by ``cytometry-classical``, each with 1 and 2 worker processes,
  alternating the two pipelines in each repeat so that both see the same machine load.
  Every configuration runs in a fresh subprocess (its own start-up and peak RSS).
- Seconds per field: the marginal cost, start-up excluded (the time between the first and
  the last field finished, over the fields between), and the wall time with start-up.
- Per-stage median times per field, peak RSS of the largest process.
- Each worker gets the cores divided among the workers (one thread each with 2 workers on 2
  cores, :mod:`overnight.models.threads`); the learned pipeline with 2 workers runs again with
  every worker using every core (TensorFlow's default, ``OVERNIGHT_THREADS_PER_WORKER`` = the
  core count): ``cytometry@2/2threads``.
- ``--isa AVX2`` starts every run with ``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN's AVX2 kernels
  only: no AVX-512, bfloat16 or AMX), OpenBLAS's Haswell kernels and NumPy without its
  AVX-512 loops (:func:`isa_env`): the figures of an AVX2-only CPU on a newer one; results go
  to ``pipeline_speed-avx2.{json,md}``.
- Scaling: one 2048² × 12 Z field and one 512² × 32 Z field, seconds per field against the
  reference field's, per voxel.

The machine's CPU model, core count, load average and float32 matrix-product speed are
recorded beside the times: the cores here are shared, so medians of repeats are quoted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
PIPELINES = ("cytometry", "cytometry-classical")
#: Goal of issue 14: seconds per field with 2 workers on 2 cores, end to end.
TARGET_S_PER_FIELD = 1.0


def make_fields(folder: Path, n_fields: int, size: int, n_z: int, seed: int) -> Path:
    """``n_fields`` synthetic fields of ``size``² px and exactly ``n_z`` slices; their folder."""
    from overnight.synth.cytometry import write_dataset
    from overnight.synth.ranges import CytometryRanges

    write_dataset(folder, n_fields, seed, size=size, ranges=CytometryRanges(n_z=(n_z, n_z)))
    return folder / "images"


def one_run(images: Path, out: Path, workers: int, pipeline: str) -> dict[str, object]:
    """Analyse ``images`` once in this process (called in a fresh subprocess)."""
    from overnight.cli.run import RunSettings
    from overnight.config import load_settings
    from overnight.imaging import find_images
    from overnight.pipeline.batch import BatchOptions, run_batch

    paths = find_images(images)
    threads = load_settings(RunSettings).threads_per_worker  # as `overnight run` reads it
    finished: list[float] = []
    start = time.perf_counter()
    outcomes = run_batch(
        paths,
        BatchOptions(pipeline=pipeline, out_url=str(out), force=True, threads_per_worker=threads),
        workers,
        on_outcome=lambda _: finished.append(time.perf_counter()),
    )
    wall = time.perf_counter() - start
    steps: dict[str, list[float]] = {}
    for o in outcomes:
        for name, seconds in o.step_timings_s.items():
            steps.setdefault(name, []).append(seconds)
    marginal = (
        (finished[-1] - finished[min(workers, len(finished)) - 1])
        / max(len(finished) - min(workers, len(finished)), 1)
        if len(finished) > workers
        else wall / max(len(finished), 1)
    )
    rss_kib = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    return {
        "wall_s": wall,
        "fields": len(paths),
        "failed": [o.image_id for o in outcomes if o.status != "done"],
        "marginal_s_per_field": marginal,
        "peak_rss_mib": rss_kib / 1024,
        "step_median_s": {k: statistics.median(v) for k, v in steps.items()},
        "seconds_per_field_median": statistics.median(o.seconds for o in outcomes),
    }


def isa_env(isa: str) -> dict[str, str]:
    """Variables that cap the vector instructions of a process's libraries at ``isa``.

    oneDNN (TensorFlow's convolutions) reads ``ONEDNN_MAX_CPU_ISA``; for ``AVX2`` the
    OpenBLAS of NumPy and SciPy also runs its Haswell kernels (``OPENBLAS_CORETYPE``) and
    NumPy leaves its AVX-512 loops out (``NPY_DISABLE_CPU_FEATURES``). All are read when the
    library loads: set them before the process starts.
    """
    if not isa:
        return {}
    env = {"ONEDNN_MAX_CPU_ISA": isa}
    if isa.upper() == "AVX2":
        env["OPENBLAS_CORETYPE"] = "Haswell"
        env["NPY_DISABLE_CPU_FEATURES"] = "X86_V4 AVX512_ICL AVX512_SPR"
    return env


def child_env(all_threads: bool = False, isa: str = "") -> dict[str, str]:
    """Environment of a measured run: every core per worker (``all_threads``), an ISA cap."""
    env = {**os.environ, **isa_env(isa)}
    if all_threads:
        env["OVERNIGHT_THREADS_PER_WORKER"] = str(len(os.sched_getaffinity(0)))
    return env


def _child(
    images: Path,
    out: Path,
    workers: int,
    pipeline: str,
    all_threads: bool = False,
    isa: str = "",
) -> dict[str, object]:
    env = child_env(all_threads, isa)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.pipeline_speed",
            "--_child",
            str(images),
            str(out),
            str(workers),
            pipeline,
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def _median_of(runs: list[dict[str, object]], key: str) -> float:
    return float(statistics.median(float(r[key]) for r in runs))  # type: ignore[arg-type]


def summarise(runs: list[dict[str, object]], fields: int) -> dict[str, object]:
    """Medians over the repeats of one configuration."""
    names = sorted({n for r in runs for n in r["step_median_s"]})  # type: ignore[attr-defined]
    marginal = _median_of(runs, "marginal_s_per_field")
    return {
        "repeats": len(runs),
        "marginal_s_per_field": round(marginal, 3),
        "fields_per_min": round(60.0 / marginal, 1),
        "wall_s_with_startup": round(_median_of(runs, "wall_s"), 2),
        "wall_fields_per_min": round(60.0 * fields / _median_of(runs, "wall_s"), 1),
        "seconds_per_field_in_worker": round(_median_of(runs, "seconds_per_field_median"), 3),
        "peak_rss_mib": round(_median_of(runs, "peak_rss_mib"), 1),
        "step_median_s": {
            n: round(
                statistics.median(
                    r["step_median_s"][n]  # type: ignore[index]
                    for r in runs
                    if n in r["step_median_s"]  # type: ignore[operator]
                ),
                4,
            )
            for n in names
        },
        "failed": runs[0]["failed"],
    }


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown page."""
    machine = report["machine"]
    lines = [
        "# Pipeline speed (`python -m bench.pipeline_speed`)",
        "",
        f"CPU: {machine['cpu_model']}, {machine['cpus']} cores; float32 matrix product "
        f"{machine['sgemm_gflops']} GFLOP/s; load average {machine['load_average_before']} "
        f"before, {machine['load_average_after']} after (shared cores: medians of "
        f"{report['repeats']} repeats); oneDNN ISA: {machine['onednn_isa'] or 'native'}.",
        "",
        f"{report['dataset']}.",
        "",
        "| pipeline | workers | s/field (marginal) | fields/min | wall with start-up (s) | "
        "s/field in a worker | peak RSS (MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, c in report["configurations"].items():
        pipeline, workers = key.split("@", 1)
        lines.append(
            f"| {pipeline} | {workers} | {c['marginal_s_per_field']} | {c['fields_per_min']} | "
            f"{c['wall_s_with_startup']} | {c['seconds_per_field_in_worker']} | "
            f"{c['peak_rss_mib']} |"
        )
    lines += [
        "",
        f"Learned / classical, 2 workers, marginal s/field: **{report['learned_over_classical']}**"
        f" (target ≤ 1.0); learned s/field with 2 workers: "
        f"**{report['learned_s_per_field_2_workers']}** (target ≤ {TARGET_S_PER_FIELD}).",
        "",
        "Per-stage median seconds per field (2 workers, learned):",
        "",
        "| stage | s |",
        "| --- | --- |",
    ]
    for name, seconds in report["configurations"]["cytometry@2"]["step_median_s"].items():
        lines.append(f"| {name} | {seconds} |")
    lines += ["", "Scaling (1 worker, learned, seconds per field in the worker):", ""]
    lines += ["| field | voxels / reference | s | s / reference | per voxel |"]
    lines += ["| --- | --- | --- | --- | --- |"]
    for name, s in report["scaling"].items():
        lines.append(
            f"| {name} | {s['voxels_ratio']} | {s['seconds']} | {s['time_ratio']} | "
            f"{s['time_per_voxel_ratio']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fields", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-scaling", action="store_true", help="skip the 2048² and 32-Z fields")
    parser.add_argument(
        "--isa", default="", help="ONEDNN_MAX_CPU_ISA of the workers, e.g. AVX2 ('' = native)"
    )
    parser.add_argument("--_child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        images, out, workers, pipeline = args._child
        print(json.dumps(one_run(Path(images), Path(out), int(workers), pipeline)))
        return 0

    from bench.models_speed import cpu_model, sgemm_gflops

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="overnight-speed-") as tmp:
        root = Path(tmp)
        images = make_fields(root / "ref", args.fields, 512, 12, 2024)
        runs: dict[str, list[dict[str, object]]] = {}
        plan = [(p, w, False) for w in args.workers for p in PIPELINES]
        cores = len(os.sched_getaffinity(0))
        if max(args.workers) > 1 and cores > 1:  # TensorFlow's default: all cores per worker
            plan.append(("cytometry", max(args.workers), True))
        for repeat in range(args.repeats):
            for pipeline, workers, all_threads in plan:
                key = f"{pipeline}@{workers}" + (f"/{cores}threads" if all_threads else "")
                result = _child(
                    images, root / f"out-{key}-{repeat}", workers, pipeline, all_threads, args.isa
                )
                runs.setdefault(key, []).append(result)
                print(
                    f"{key} repeat {repeat}: {result['marginal_s_per_field']:.2f} s/field "
                    f"(wall {result['wall_s']:.1f} s)",
                    file=sys.stderr,
                )
        RESULTS.mkdir(parents=True, exist_ok=True)  # the raw runs first: summaries can fail
        runs_file = "pipeline_speed-runs" + (f"-{args.isa.lower()}" if args.isa else "") + ".json"
        (RESULTS / runs_file).write_text(json.dumps(runs, indent=2) + "\n")
        configurations = {k: summarise(v, args.fields) for k, v in runs.items()}
        scaling: dict[str, dict[str, float]] = {}
        if not args.no_scaling and "cytometry@1" in configurations:
            reference_s = float(configurations["cytometry@1"]["seconds_per_field_in_worker"])  # type: ignore[arg-type]
            for name, size, n_z in (("2048x2048x12", 2048, 12), ("512x512x32", 512, 32)):
                folder = make_fields(root / name, 1, size, n_z, 77)
                result = _child(folder, root / f"out-{name}", 1, "cytometry", isa=args.isa)
                seconds = float(result["seconds_per_field_median"])  # type: ignore[arg-type]
                voxels = (size / 512) ** 2 * n_z / 12
                scaling[name] = {
                    "voxels_ratio": round(voxels, 2),
                    "seconds": round(seconds, 2),
                    "time_ratio": round(seconds / reference_s, 2),
                    "time_per_voxel_ratio": round(seconds / reference_s / voxels, 2),
                    "peak_rss_mib": round(float(result["peak_rss_mib"]), 1),  # type: ignore[arg-type]
                    "step_s": result["step_median_s"],  # type: ignore[dict-item]
                }
                print(f"{name}: {seconds:.2f} s ({voxels:.2f}x the voxels)", file=sys.stderr)
    report: dict[str, object] = {
        "benchmark": "pipeline speed (overnight run, embedded)",
        "dataset": f"{args.fields} synthetic fields, 512x512, 12 Z, 2 channels, uint16 (seed 2024)",
        "repeats": args.repeats,
        "machine": {
            "cpu_model": cpu_model(),
            "cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "sgemm_gflops": round(sgemm_gflops(), 1),
            "load_average_before": round(load_before, 2),
            "load_average_after": round(os.getloadavg()[0], 2),
            "onednn_isa": args.isa,
        },
        "configurations": configurations,
        "scaling": scaling,
    }
    if "cytometry@2" in configurations and "cytometry-classical@2" in configurations:
        learned = float(configurations["cytometry@2"]["marginal_s_per_field"])  # type: ignore[arg-type]
        classical = float(configurations["cytometry-classical@2"]["marginal_s_per_field"])  # type: ignore[arg-type]
        report["learned_s_per_field_2_workers"] = round(learned, 3)
        report["learned_over_classical"] = round(learned / classical, 2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "pipeline_speed" + (f"-{args.isa.lower()}" if args.isa else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    if "learned_over_classical" in report:
        (RESULTS / f"{stem}.md").write_text(markdown(report))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
