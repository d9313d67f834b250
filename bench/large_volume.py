"""Fields and volumes larger than the memory budget: peak RSS, throughput, cost per voxel.

Every measurement runs in a fresh child process; its peak RSS is the child's ``ru_maxrss``.

- ``mosaic``: the issue-13 file, a 635 kB deflate TIFF of 2 x 12288² uint16 zeros (576 MiB
  decoded), through ``overnight run`` at the default budget (3.5 GiB): the classical pipeline
  on the whole field; the learned one on the first row of blocks (the same blocks and the
  same field-wide label band as the whole run; the 3D network is too slow here for all 36).
- ``zstack``: 4096² x 24 z x 2 C (1.5 GiB, uncompressed, memory-mapped) at the default budget,
  made by repeating a synthetic 1024² field: classical whole, learned on its first block row.
- ``volume``: 2048², 4096² and 8192² x 12 z x 2 C (the last ≈ 3 GB) with a budget of 1.9 GiB
  under ``RLIMIT_AS`` = 4 GiB (``ulimit -v``), classical, whole: cost per voxel at 3 sizes.
- ``lazy``: a 49152² x 12 z x 2 C uint16 volume (116 GB) in a Zarr store whose chunks are
  generated when read (deterministic per chunk, nothing on disk); the first ``--lazy-blocks``
  blocks are analysed (budget 1.9 GiB, ``RLIMIT_AS`` 4 GiB) and the whole volume's time is
  extrapolated from them.

Writes ``bench/results/large_volume.json`` and ``.md``. CPU: run it alone, ``nice -n 10``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 1_312_2026
GIB = 2**30
VOLUME_BUDGET_GB = 1.9
ADDRESS_LIMIT_BYTES = 4 * GIB

_MEASURE = (
    "import json, resource, subprocess, sys, time; limit = int(sys.argv[1]); "
    "pre = (lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))) if limit else None; "
    "t = time.perf_counter(); "
    "done = subprocess.run(sys.argv[2:], capture_output=True, text=True, preexec_fn=pre); "
    "print(json.dumps({'code': done.returncode, 'seconds': time.perf_counter() - t, "
    "'peak_rss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
    "'tail': (done.stdout + done.stderr)[-1500:]}))"
)


def measured(command: list[str], env: dict[str, str], address_limit: int = 0) -> dict[str, Any]:
    """Run ``command`` in a child (``RLIMIT_AS`` = ``address_limit`` if > 0): code, s, peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(address_limit), *command],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["peak_rss_gib"] = round(report.pop("peak_rss_kib") / 2**20, 3)
    report["seconds"] = round(report["seconds"], 1)
    if report["code"] == 0:
        report.pop("tail")
    return report


def overnight_run(folder: Path, out: Path, pipeline: str) -> list[str]:
    """The ``overnight run`` command line of this venv, one worker."""
    overnight = Path(sys.executable).with_name("overnight")
    return [str(overnight), "run", str(folder), "--out", str(out), "--pipeline", pipeline,
            "--workers", "1", "--force", "--quiet"]  # fmt: skip


# ---------------------------------------------------------------- inputs


def synthetic_tile(n_z: int) -> np.ndarray:
    """A 1024² synthetic field (ZCYX uint16) with exactly ``n_z`` slices (repeated cyclically)."""
    from overnight.synth.field import draw_field

    image = draw_field(np.random.default_rng(SEED), 1024).image
    return np.resize(image, (n_z, *image.shape[1:]))


def write_zero_mosaic(path: Path, size: int = 12288, tile: int = 1024) -> None:
    """The issue-13 file: a deflate TIFF of 2 x ``size``² zeros in ``tile``² tiles."""
    import tifffile

    zeros = np.zeros((tile, tile), np.uint16)
    n_tiles = 2 * (size // tile) ** 2
    tifffile.imwrite(path, (zeros for _ in range(n_tiles)), shape=(2, size, size),
                     dtype=np.uint16, tile=(tile, tile), compression="zlib",
                     metadata={"axes": "CYX"})  # fmt: skip


def write_repeated_volume(path: Path, tile: np.ndarray, size: int) -> None:
    """An uncompressed ZCYX TIFF of ``size``² planes, each plane ``tile``'s repeated."""
    import tifffile

    n_z, n_c, side, _ = tile.shape
    reps = -(-size // side)
    pages = (
        np.tile(tile[z, c], (reps, reps))[:size, :size] for z in range(n_z) for c in range(n_c)
    )
    tifffile.imwrite(path, pages, shape=(n_z, n_c, size, size), dtype=np.uint16,
                     metadata={"axes": "ZCYX"})  # fmt: skip


# ---------------------------------------------------------------- children


def child_crop(args: argparse.Namespace) -> None:
    """Analyse the first row of blocks of ``args.path`` (the whole field's block size)."""
    from overnight.imaging.limits import ReadLimits, check_streamable
    from overnight.imaging.regions import FieldRegions, open_regions
    from overnight.pipeline.block_run import BlockedField, run_in_blocks
    from overnight.pipeline.blocks import plan_blocks
    from overnight.pipeline.definition import load_pipeline
    from overnight.pipeline.runner import PreparedPipeline

    limits = ReadLimits.with_working_set_gb(args.budget_gb)
    prepared = PreparedPipeline(load_pipeline(args.pipeline))
    with open_regions(Path(args.path), limits=limits) as regions:
        z, c, height, width = regions.shape_zcyx
        core = check_streamable(args.path, regions.shape_zcyx, regions.dtype, limits)
        rows = min(height, core)  # one row of blocks, full width (the label band's)
        crop = FieldRegions(regions.source, (z, c, rows, width), regions.dtype,
                            regions.calibration, regions.reader)  # fmt: skip
        plan = plan_blocks((rows, width), core, limits.block_halo_px)
        start = time.perf_counter()
        run = run_in_blocks(prepared, BlockedField(crop, plan), "crop")
    _print_child(start, plan, run, z * c * rows * width)


def child_lazy(args: argparse.Namespace) -> None:
    """Analyse the first ``args.blocks`` blocks of a lazily generated 116 GB Zarr volume."""
    import zarr
    from zarr.core.buffer import default_buffer_prototype
    from zarr.storage import MemoryStore

    from overnight.imaging.calibration import Calibration
    from overnight.imaging.limits import ReadLimits, check_streamable
    from overnight.imaging.regions import FieldRegions
    from overnight.pipeline.block_run import BlockedField, run_in_blocks
    from overnight.pipeline.blocks import plan_blocks
    from overnight.pipeline.definition import load_pipeline
    from overnight.pipeline.runner import PreparedPipeline

    tile = synthetic_tile(args.z)  # ZCYX 1024²: each 512² chunk is a quarter of it
    chunk = 512

    class GeneratedStore(MemoryStore):
        """Chunks are made when read (a quarter of the synthetic field, by chunk index)."""

        async def get(self, key, prototype=None, byte_range=None):  # type: ignore[no-untyped-def]
            if "c/" not in key:
                return await super().get(key, prototype, byte_range)
            c, z, yi, xi = (int(i) for i in key.split("c/")[-1].split("/"))
            y0, x0 = (yi % 2) * chunk, (xi % 2) * chunk
            data = np.ascontiguousarray(tile[z, c, y0 : y0 + chunk, x0 : x0 + chunk], "<u2")
            return (prototype or default_buffer_prototype()).buffer.from_bytes(data.tobytes())

    side = args.lazy_side
    group = zarr.open_group(GeneratedStore(), mode="w", zarr_format=3)
    array = group.create_array("0", shape=(2, args.z, side, side), chunks=(1, 1, chunk, chunk),
                               dtype="uint16", compressors=None, fill_value=0)  # fmt: skip

    def reader(ys: slice, xs: slice) -> np.ndarray:
        return np.asarray(array[:, :, ys, xs]).transpose(1, 0, 2, 3)

    shape = (args.z, 2, side, side)
    regions = FieldRegions("lazy.zarr", shape, np.dtype("uint16"), Calibration(0.2, 0.5), reader)
    limits = ReadLimits.with_working_set_gb(args.budget_gb)
    core = check_streamable("lazy.zarr", shape, regions.dtype, limits)
    rows, width = core, min(side, args.blocks * core)  # the first blocks of the first row
    crop = FieldRegions("lazy.zarr", (args.z, 2, rows, width), regions.dtype,
                        regions.calibration, reader)  # fmt: skip
    plan = plan_blocks((rows, width), core, limits.block_halo_px)
    prepared = PreparedPipeline(load_pipeline(args.pipeline))
    start = time.perf_counter()
    run = run_in_blocks(prepared, BlockedField(crop, plan), "lazy")
    whole = plan_blocks((side, side), core, limits.block_halo_px)
    band_rows = core + 2 * limits.block_halo_px + 256
    extra = {
        "blocks_in_volume": len(whole),
        "volume_bytes": 2 * args.z * side * side * 2,
        "full_width_band_gib": round(band_rows * (side - width) * 4 / GIB, 3),
    }
    _print_child(start, plan, run, args.z * 2 * rows * width, extra)


def _print_child(start: float, plan: Any, run: Any, voxels: int, extra: dict | None = None) -> None:
    seconds = time.perf_counter() - start
    print(json.dumps({
        "analysis_seconds": round(seconds, 1),
        "blocks": len(plan), "core_px": plan.core_px, "halo_px": plan.halo_px,
        "shape_yx": list(plan.shape_yx), "voxels": voxels,
        "n_cells": int(len(run.values["cells_table"])),
        "peak_rss_self_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        **(extra or {}),
    }))  # fmt: skip


def child_report(command: list[str], env: dict[str, str], limit: int = 0) -> dict[str, Any]:
    """A measured child whose last stdout line is JSON (run with ``--json``)."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE.replace("[-1500:]", ""), str(limit), *command],
        capture_output=True, text=True, env={**os.environ, **env}, check=True,
    )  # fmt: skip
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["peak_rss_gib"] = round(report.pop("peak_rss_kib") / 2**20, 3)
    report["seconds"] = round(report["seconds"], 1)
    tail = report.pop("tail")
    if report["code"] == 0:
        report |= json.loads([ln for ln in tail.strip().splitlines() if ln.startswith("{")][-1])
    else:
        report["tail"] = tail[-1500:]
    return report


# ---------------------------------------------------------------- cases


def _record(report: dict[str, Any], name: str, value: dict[str, Any]) -> None:
    report["cases"][name] = value
    print(f"[large_volume] {name}: {json.dumps(value)}", file=sys.stderr, flush=True)
    write_report(report)


def _crop_command(mode: str, path: Path, pipeline: str, budget: float, **more: Any) -> list[str]:
    command = [sys.executable, "-m", "bench.large_volume", mode, "--path", str(path),
               "--pipeline", pipeline, "--budget-gb", str(budget)]  # fmt: skip
    for key, value in more.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    return command


def run_cases(args: argparse.Namespace, report: dict[str, Any], scratch: Path) -> None:
    default = {"OVERNIGHT_MAX_WORKING_SET_GB": "3.5"}
    volume = {"OVERNIGHT_MAX_WORKING_SET_GB": str(VOLUME_BUDGET_GB)}
    if "mosaic" in args.cases:
        folder = scratch / "mosaic"
        folder.mkdir()
        write_zero_mosaic(folder / "mosaic.tif")
        size = (folder / "mosaic.tif").stat().st_size
        run = measured(overnight_run(folder, scratch / "out-m", "cytometry-classical"), default)
        _record(report, "mosaic12288_classical_whole", {"file_bytes": size, **run})
        crop = _crop_command("--child-crop", folder / "mosaic.tif", "cytometry", 3.5)
        _record(report, "mosaic12288_learned_first_block_row", child_report(crop, default))
    if "zstack" in args.cases:
        folder = scratch / "zstack"
        folder.mkdir()
        write_repeated_volume(folder / "zstack.tif", synthetic_tile(24), 4096)
        run = measured(overnight_run(folder, scratch / "out-z", "cytometry-classical"), default)
        _record(report, "zstack4096x24_classical_whole", run)
        crop = _crop_command("--child-crop", folder / "zstack.tif", "cytometry", 3.5)
        _record(report, "zstack4096x24_learned_first_block_row", child_report(crop, default))
        (folder / "zstack.tif").unlink()
    if "volume" in args.cases:
        tile = synthetic_tile(12)
        for size in args.volume_sizes:
            folder = scratch / f"volume{size}"
            folder.mkdir()
            write_repeated_volume(folder / "volume.tif", tile, size)
            command = overnight_run(folder, scratch / f"out-v{size}", "cytometry-classical")
            run = measured(command, volume, ADDRESS_LIMIT_BYTES)
            voxels = 12 * 2 * size * size
            run |= {"voxels": voxels, "file_bytes": (folder / "volume.tif").stat().st_size}
            if run["code"] == 0:
                run["megavoxels_per_s"] = round(voxels / 1e6 / run["seconds"], 2)
                run["megapixels_yx_per_s"] = round(size * size / 1e6 / run["seconds"], 3)
                run["s_per_gigavoxel"] = round(run["seconds"] / (voxels / 1e9), 1)
            _record(report, f"volume{size}x12x2_classical_whole", run)
            (folder / "volume.tif").unlink()
    if "agreement" in args.cases:
        report["agreement_run"] = {
            "cpu": cpu_name(),
            "command": "nice -n 15 python -m bench.large_volume --cases agreement --append",
            "load_at_start": round(os.getloadavg()[0], 1),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        report["agreement"] = [
            agreement(seed, scratch, pipeline)
            for pipeline in AGREEMENT_PIPELINES
            for seed in AGREEMENT_SEEDS
        ]
        write_report(report)
    if "lazy" in args.cases:
        crop = _crop_command("--child-lazy", scratch, "cytometry-classical", VOLUME_BUDGET_GB,
                             blocks=args.lazy_blocks, z=12, lazy_side=49152)  # fmt: skip
        run = child_report(crop, volume, ADDRESS_LIMIT_BYTES)
        if run["code"] == 0:
            per_block = run["analysis_seconds"] / run["blocks"]
            run["extrapolated_volume_hours"] = round(per_block * run["blocks_in_volume"] / 3600, 1)
            run["megavoxels_per_s"] = round(run["voxels"] / 1e6 / run["analysis_seconds"], 2)
        _record(report, "lazy49152x12x2_classical_first_blocks", run)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``) and how many cores this process may use."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next(line.split(":", 1)[1].strip() for line in lines if "model name" in line)
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}, {len(os.sched_getaffinity(0))} cores"


AGREEMENT_SEEDS = (1, 2, 5)
AGREEMENT_PIPELINES = ("cytometry-classical", "cytometry")


def agreement(
    seed: int,
    scratch: Path,
    pipeline: str = "cytometry-classical",
    size: int = 1024,
    core_px: int = 384,
) -> dict[str, Any]:
    """Block path vs whole field (``pipeline``) on one synthetic field, both against its truth.

    Cell F1 between the two label images, the share of matched cells with the same count,
    and each one's cell F1 and count MAE against the field's ground truth.
    """
    import pandas as pd
    import tifffile

    from overnight.evaluation.matching import match_labels
    from overnight.imaging.limits import ReadLimits, block_working_set_bytes
    from overnight.pipeline.definition import load_pipeline
    from overnight.pipeline.image import ImageSource, analyse_image
    from overnight.pipeline.runner import PreparedPipeline
    from overnight.results.layout import DatasetResults
    from overnight.storage import open_store
    from overnight.synth.dataset import write_field
    from overnight.synth.field import draw_field

    field = draw_field(np.random.default_rng(seed), size)
    image = write_field(field, scratch / f"agree{seed}-{pipeline}", "field")
    z, c, y, x = field.image.shape
    budget = block_working_set_bytes((z, c, y, x), np.dtype("uint16"), core_px, 128) + 1
    prepared = PreparedPipeline(load_pipeline(pipeline))
    runs: dict[str, tuple[np.ndarray, Any]] = {}
    for name, limits in (
        ("whole", ReadLimits(max_working_set_bytes=64 * GIB)),
        ("blocks", ReadLimits(max_working_set_bytes=budget, max_block_core_px=core_px)),
    ):
        out = scratch / f"agree{seed}-{pipeline}-{name}"
        analyse_image(ImageSource.file(image), prepared, DatasetResults(open_store(str(out))),
                      limits=limits)  # fmt: skip
        runs[name] = (
            tifffile.imread(out / "field/labels.tif"),
            pd.read_csv(out / "field/cells.csv"),
        )

    def f1(a: np.ndarray, b: np.ndarray) -> tuple[float, Any]:
        matches = match_labels(a, b)
        n_a, n_b = len(np.unique(a[a > 0])), len(np.unique(b[b > 0]))
        return round(2 * len(matches.true_ids) / max(n_a + n_b, 1), 4), matches

    def counts(cells: pd.DataFrame) -> dict[int, int]:
        return dict(zip(cells["cell_id"], cells["pnp_count"], strict=True))

    (whole, whole_cells), (blocks, block_cells) = runs["whole"], runs["blocks"]
    f1_between, between = f1(whole, blocks)
    same = [counts(whole_cells)[a] == counts(block_cells)[b]
            for a, b in zip(between.true_ids, between.pred_ids, strict=True)]  # fmt: skip
    report: dict[str, Any] = {
        "pipeline": pipeline, "seed": seed, "size": size, "core_px": core_px,
        "body_adu": round(field.params.cell_signal_adu, 1),
        "cells_whole": len(whole_cells), "cells_blocks": len(block_cells),
        "f1_blocks_vs_whole": f1_between, "same_count_share": round(float(np.mean(same)), 4),
    }  # fmt: skip
    truth = counts(field.cells)
    for name, (labels, cells) in runs.items():
        score, matches = f1(field.labels, labels)
        errors = [abs(truth[a] - counts(cells)[b])
                  for a, b in zip(matches.true_ids, matches.pred_ids, strict=True)]  # fmt: skip
        report[f"f1_truth_{name}"] = score
        report[f"count_mae_truth_{name}"] = round(float(np.mean(errors)), 3)
    return report


def write_report(report: dict[str, Any]) -> None:
    """Write ``large_volume.json`` and the Markdown table."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "large_volume.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Fields and volumes larger than the memory budget (`python -m bench.large_volume`)",
        "",
        f"CPU: {report['cpu']}; {report['note']}",
        "",
        "| case | budget GiB | peak RSS GiB | s | blocks | MVoxel/s | notes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, case in report["cases"].items():
        budget = VOLUME_BUDGET_GB if name.startswith(("volume", "lazy")) else 3.5
        notes = []
        if name.startswith(("volume", "lazy")):
            notes.append("RLIMIT_AS 4 GiB")
        if "s_per_gigavoxel" in case:
            notes.append(f"{case['s_per_gigavoxel']} s/Gvoxel")
        if "extrapolated_volume_hours" in case:
            hours = case["extrapolated_volume_hours"]
            notes.append(f"{case['blocks_in_volume']} blocks: ~{hours} h (extrapolated)")
        if "full_width_band_gib" in case:
            notes.append(f"+{case['full_width_band_gib']} GiB label band at full width")
        if case.get("code"):
            notes.append(f"FAILED code {case['code']}")
        seconds = case.get("analysis_seconds", case.get("seconds"))
        lines.append(
            f"| {name} | {budget} | {case.get('peak_rss_gib')} | {seconds} | "
            f"{case.get('blocks', '')} | {case.get('megavoxels_per_s', '')} | {'; '.join(notes)} |"
        )
    rows = report.get("agreement", [])
    if rows:
        run = report.get("agreement_run", {})
        lines += [
            "",
            "Block path (384² cores, 128 px halo, field statistics measured over the blocks "
            "first: issue 15) against the whole field, 1024² synthetic fields",
            f"(`{run.get('command', '')}`; CPU: {run.get('cpu', '?')}, "
            f"load {run.get('load_at_start', '?')} at start, {run.get('started', '')}):",
            "",
            "| pipeline | seed | body ADU | cells whole / blocks | F1 blocks vs whole | "
            "same count | F1 truth whole / blocks | count MAE truth whole / blocks | "
            "before: cells blocks, F1, same count |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        before = {
            (r.get("pipeline", "cytometry-classical"), r["seed"]): r
            for r in report.get("agreement_before", {}).get("rows", [])
        }
        for r in rows:
            old = before.get((r.get("pipeline", "cytometry-classical"), r["seed"]))
            was = (
                f"{old['cells_blocks']}, {old['f1_blocks_vs_whole']}, {old['same_count_share']}"
                if old
                else ""
            )
            lines.append(
                f"| {r.get('pipeline', 'cytometry-classical')} | {r['seed']} | {r['body_adu']} | "
                f"{r['cells_whole']} / {r['cells_blocks']} | "
                f"{r['f1_blocks_vs_whole']} | {r['same_count_share']} | "
                f"{r['f1_truth_whole']} / {r['f1_truth_blocks']} | "
                f"{r['count_mae_truth_whole']} / {r['count_mae_truth_blocks']} | {was} |"
            )
        if before:
            lines += ["", f"Before: {report['agreement_before'].get('note', '')}"]
    (RESULTS / "large_volume.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", nargs="+", default=["mosaic", "zstack", "volume", "lazy"])
    parser.add_argument("--volume-sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--lazy-blocks", type=int, default=4)
    parser.add_argument("--child-crop", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-lazy", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", default="")
    parser.add_argument("--pipeline", default="cytometry-classical")
    parser.add_argument("--budget-gb", type=float, default=3.5)
    parser.add_argument("--z", type=int, default=12)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--lazy-side", type=int, default=49152)
    parser.add_argument("--scratch", default=None, help="folder for the generated inputs")
    parser.add_argument("--append", action="store_true", help="keep the cases already reported")
    args = parser.parse_args()
    if args.child_crop:
        child_crop(args)
        return 0
    if args.child_lazy:
        child_lazy(args)
        return 0
    report: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "note": "2 shared cores (AMD EPYC, AVX-512), loaded by other work; one run per case",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cases": {},
    }
    earlier = RESULTS / "large_volume.json"
    if args.append and earlier.is_file():
        kept = json.loads(earlier.read_text())
        report["cases"] = kept["cases"]
        report["agreement"] = kept.get("agreement", [])
        if "agreement_before" in kept:
            report["agreement_before"] = kept["agreement_before"]
        if not set(args.cases) - {"agreement"}:  # the cases keep the CPU they ran on
            report["cpu"], report["note"] = kept["cpu"], kept["note"]
    with tempfile.TemporaryDirectory(prefix="overnight-volume-", dir=args.scratch) as scratch:
        run_cases(args, report, Path(scratch))
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
