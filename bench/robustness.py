"""``make bench-robustness``: where each pipeline breaks as one parameter leaves its range.

For each swept parameter, fields are drawn with that parameter fixed at each value (from well
inside the imaging model's range to well outside it) and every other value drawn from the spec's
ranges; the learned (``cytometry``) and the classical (``cytometry-classical``) pipeline run on
the same fields and are scored. The sweep also measures the QC flags: of the images the learned
pipeline got wrong (cell F1 < 0.9), how many it flagged (recall), and how many flagged images
were fine (false alarms).

Writes ``bench/results/robustness.json``, ``.md`` and ``.png``. The skin sweep is
``python -m bench.robustness_skin``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.accuracy import PIPELINES, RESULTS, _clean, run_pipeline, score

SWEEP_SEED = 515_2026  # never used for training, tuning or the accuracy hold-outs
BAD_CELL_F1 = 0.9
#: The camera of the brightness sweep: the spec's highest gain and read noise, where a dim
#: body's per-pixel SNR is lowest.
_GAIN, _READ_NOISE = 2.0, 8.0


def body_pixel_snr(body_adu: float) -> float:
    """Per-pixel SNR of a body ``body_adu`` above the offset with the sweep's camera."""
    return body_adu / float(np.sqrt(_READ_NOISE**2 + _GAIN * body_adu))


@dataclass(frozen=True)
class Sweep:
    """One parameter swept: its values, where the spec's range lies, and how to set it."""

    name: str
    label: str
    values: tuple[float, ...]
    spec: tuple[float, float]
    ranges: Callable[[float], Any]


def _sweeps() -> list[Sweep]:
    from overnight.synth.ranges import CytometryRanges

    spec = CytometryRanges()

    def brightness(v: float) -> CytometryRanges:
        adu = v * _READ_NOISE  # invert body_pixel_snr by fixed-point iteration
        for _ in range(50):
            adu = v * float(np.sqrt(_READ_NOISE**2 + _GAIN * adu))
        return spec.model_copy(
            update={
                "cell_signal_adu": (adu, adu),
                "gain": (_GAIN, _GAIN),
                "read_noise_adu": (_READ_NOISE, _READ_NOISE),
            }
        )

    def spot_snr(v: float) -> CytometryRanges:
        return spec.model_copy(update={"snr": (v, v)})

    def cell_size(v: float) -> CytometryRanges:
        types = tuple(
            t.model_copy(update={"diameter_px": (t.diameter_px[0] * v, t.diameter_px[1] * v)})
            for t in spec.cell_types
        )
        return spec.model_copy(update={"cell_types": types})

    def psf(v: float) -> CytometryRanges:
        return spec.model_copy(
            update={
                "sigma_xy_px": (spec.sigma_xy_px[0] * v, spec.sigma_xy_px[1] * v),
                "sigma_z_slices": (spec.sigma_z_slices[0] * v, spec.sigma_z_slices[1] * v),
            }
        )

    return [
        Sweep(
            "cell_brightness",
            "body per-pixel SNR",
            (0.5, 0.75, 1.0, 1.5, 3.0, 10.0),
            (body_pixel_snr(10.0), body_pixel_snr(400.0)),
            brightness,
        ),
        Sweep(
            "spot_snr",
            "single-particle SNR (A / read noise)",
            (2, 3, 4, 8, 16, 25),
            (4, 20),
            spot_snr,
        ),
        Sweep("cell_size", "cell diameter × spec", (0.5, 0.75, 1.0, 1.25, 1.5), (1, 1), cell_size),
        Sweep("psf_width", "spot σ × spec", (0.5, 0.75, 1.0, 1.25, 1.5), (1, 1), psf),
    ]


def run_point(
    sweep: Sweep, value: float, n: int, size: int, seed: int, root: Path
) -> dict[str, Any]:
    """Draw ``n`` fields at one value, run both pipelines, score them."""
    from overnight.synth.cytometry import write_dataset

    data = root / f"{sweep.name}-{value}"
    paths = write_dataset(data / "holdout", n, seed, size, sweep.ranges(value))
    point: dict[str, Any] = {"value": value, "pipelines": {}}
    for name in PIPELINES:
        results = data / "results" / name
        run_pipeline(name, paths, results)
        scored = score(data / "holdout", results)
        for field in scored["fields"]:
            field.update(_stored_qc(results / field["image_id"]))
        point["pipelines"][name] = {"metrics": scored["metrics"], "fields": scored["fields"]}
    return point


def reuse_point(sweep: Sweep, value: float, root: Path, kept: dict[str, Any]) -> dict[str, Any]:
    """One point of a kept run (``--keep`` folder ``root``, its ``report.json`` ``kept``).

    Nothing is drawn, run or scored again: the scores are the kept report's, and the learned
    pipeline's QC flags are measured again (:func:`remeasure_qc`), so a change to the flags
    is judged in seconds, without the networks.
    """
    data = root / f"{sweep.name}-{value}"
    points = kept["sweeps"].get(sweep.name, {}).get("points", [])
    point = next((p for p in points if p["value"] == value), None)
    if point is None or not (data / "results").is_dir():
        raise FileNotFoundError(f"{root}: no kept run of {sweep.name} = {value} to reuse")
    name = PIPELINES[0]
    qc = remeasure_qc(data / "holdout", data / "results" / name)
    for field in point["pipelines"][name]["fields"]:
        field.update(qc[field["image_id"]])
    return point


def _stored_qc(result_dir: Path) -> dict[str, Any]:
    """``flags``, ``doubt`` and ``signals`` of one image's ``result.json`` (empty when none)."""
    path = result_dir / "result.json"
    qc = (json.loads(path.read_text()).get("qc") or {}) if path.exists() else {}
    return {
        "flags": qc.get("flags", []),
        "doubt": qc.get("doubt", 0),
        "signals": qc.get("signals", {}),
    }


def remeasure_qc(holdout: Path, results: Path) -> dict[str, dict[str, Any]]:
    """Per image of a kept run: its QC measured again by the current flags code.

    The cell signals (:func:`~overnight.steps.flags.cell_signals`) are measured again on the
    stored cells (``labels.tif``, ``cells.csv``) and the focus projection of the stored image;
    the others (particles, network confidence, saturation, focus) are read from
    ``result.json``, and the flags raised again with the default thresholds.
    """
    import pandas as pd
    import tifffile

    from overnight.steps import flags
    from overnight.steps.cells import focus_projection

    thresholds = flags.FlagThresholds()
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(results.glob("*/result.json")):
        record = json.loads(path.read_text())
        stored = {
            k: float("nan") if v is None else float(v)
            for k, v in (record.get("qc") or {}).get("signals", {}).items()
        }
        volume = tifffile.imread(holdout / "images" / f"{path.parent.name}.tif")
        cell_image = focus_projection(np.asarray(volume[:, 0], np.float32))
        labels = np.asarray(tifffile.imread(path.parent / "labels.tif"), np.uint32)
        table = pd.read_csv(path.parent / "cells.csv")
        signals = stored | flags.cell_signals(
            cell_image,
            labels,
            float(record["pixel_size_um"]),
            table["type_confidence"].to_numpy(float),
            thresholds.cell_diameter_um[0],
            thresholds.elongated_aspect,
            thresholds.merged_waist,
        )
        report = flags.QcReport(signals, flags.raise_flags(signals, thresholds)).as_dict()
        out[path.parent.name] = report
    return out


def _bad(field: dict[str, Any], metric: str) -> bool:
    value = field.get(metric)
    return value is not None and value < BAD_CELL_F1


def flag_quality(report: dict[str, Any]) -> dict[str, Any]:
    """How well the learned pipeline's QC flags pick out its bad images.

    ``recall``: share of images with cell F1 < 0.9 that raised a flag (the issue's measure).
    An image is *fine* when cell F1, type accuracy and PNP F1 are all ≥ 0.9; a flag on any
    other image points at a real problem, so ``fine_images_flagged`` (false alarms over fine
    images) and ``false_alarms_of_flagged`` (over flagged images) count flags on fine ones.
    """
    located = [
        (sweep["name"], point["value"], field)
        for sweep in report["sweeps"].values()
        for point in sweep["points"]
        for field in point["pipelines"]["cytometry"]["fields"]
    ]
    fields = [field for _, _, field in located]
    cell_bad = [f for f in fields if _bad(f, "cell_f1")]
    fine = [
        f for f in fields if not any(_bad(f, m) for m in ("cell_f1", "type_accuracy", "pnp_f1"))
    ]
    flagged = [f for f in fields if f["doubt"] > 0]
    any_bad = [f for f in fields if f not in fine]
    return {
        "images": len(fields),
        "cell_bad_images": len(cell_bad),
        "any_bad_images": len(any_bad),
        "flagged_images": len(flagged),
        "recall": _clean(sum(f["doubt"] > 0 for f in cell_bad) / len(cell_bad))
        if cell_bad
        else None,
        "recall_any_bad": _clean(sum(f["doubt"] > 0 for f in any_bad) / len(any_bad))
        if any_bad
        else None,
        "fine_images_flagged": _clean(sum(f["doubt"] > 0 for f in fine) / len(fine))
        if fine
        else None,
        "false_alarms_of_flagged": _clean(sum(f in fine for f in flagged) / len(flagged))
        if flagged
        else None,
        "definition": f"bad = learned cell F1 < {BAD_CELL_F1}; fine = cell F1, type accuracy "
        f"and PNP F1 all ≥ {BAD_CELL_F1}; flagged = at least one QC flag",
        "flag_counts": {
            "bad": dict(Counter(flag for f in cell_bad for flag in f["flags"])),
            "fine": dict(Counter(flag for f in fine for flag in f["flags"])),
        },
        "missed": [
            {"sweep": name, "value": value, "image_id": f["image_id"], "cell_f1": f["cell_f1"]}
            for name, value, f in located
            if f in cell_bad and f["doubt"] == 0
        ],
        "fine_flagged": [
            {"sweep": name, "value": value, "image_id": f["image_id"], "flags": f["flags"]}
            for name, value, f in located
            if f in fine and f["doubt"] > 0
        ],
    }


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown page."""
    lines = [
        "# Robustness sweep: learned beside classical",
        "",
        f"{report['n_fields']} fields of {report['size_px']}² px per point, seed {report['seed']}"
        " (never used for training, tuning or the accuracy hold-outs); every parameter not "
        "swept is drawn from the spec's ranges. Reproduce: `make bench-robustness`. "
        "`*` marks values outside the spec's range.",
        "",
    ]
    for sweep in report["sweeps"].values():
        lines += [
            f"## {sweep['label']} (spec range {sweep['spec'][0]:.3g}–{sweep['spec'][1]:.3g})",
            "",
            "| value | cell F1 L / C | mean IoU L / C | types L / C | count MAE L / C "
            "| PNP F1 L / C |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for point in sweep["points"]:
            m = [point["pipelines"][p]["metrics"] for p in PIPELINES]
            inside = sweep["spec"][0] - 1e-9 <= point["value"] <= sweep["spec"][1] + 1e-9
            cells = " | ".join(
                f"{_f(m[0][k])} / {_f(m[1][k])}"
                for k in ("cell_f1", "mean_iou", "type_accuracy", "count_mae", "pnp_f1")
            )
            lines.append(f"| {point['value']:g}{'' if inside else '*'} | {cells} |")
        lines.append("")
    q = report["flags"]
    lines += [
        "## QC flags",
        "",
        f"{q['definition']}. {q['images']} images, {q['cell_bad_images']} with cell F1 < 0.9, "
        f"{q['any_bad_images']} not fine, {q['flagged_images']} flagged: recall on cell-F1-bad "
        f"images **{_f(q['recall'])}** (target ≥ 0.9), on all not-fine images "
        f"{_f(q['recall_any_bad'])}; fine images flagged **{_f(q['fine_images_flagged'])}** "
        f"(target ≤ 0.10); flagged images that were fine {_f(q['false_alarms_of_flagged'])}.",
        "",
        "| flag | raised on bad images | raised on fine images |",
        "| --- | --- | --- |",
        *(
            f"| `{flag}` | {q['flag_counts']['bad'].get(flag, 0)} "
            f"| {q['flag_counts']['fine'].get(flag, 0)} |"
            for flag in sorted({*q["flag_counts"]["bad"], *q["flag_counts"]["fine"]})
        ),
        "",
        "Bad images no flag caught: "
        + (
            "; ".join(
                f"{m['sweep']} {m['value']:g} {m['image_id'][-9:]} (cell F1 {m['cell_f1']:.2f})"
                for m in q["missed"]
            )
            or "none"
        )
        + ".",
        "",
        "Fine images flagged: "
        + (
            "; ".join(
                f"{m['sweep']} {m['value']:g} {m['image_id'][-9:]} ({', '.join(m['flags'])})"
                for m in q["fine_flagged"]
            )
            or "none"
        )
        + ".",
        "",
        f"Run time: {report['seconds']:.0f} s on this machine"
        + (
            f"; the QC flags measured again on its kept results ({report['reused']}) in "
            f"{report['reuse_seconds']:.0f} s, networks not run again (`--reuse`)."
            if report.get("reused")
            else "."
        ),
        "",
    ]
    return "\n".join(lines)


def _f(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"


def plot(report: dict[str, Any], path: Path) -> None:
    """A grid: one column per swept parameter, one row per metric; spec range shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ("cell_f1", "type_accuracy", "pnp_f1", "count_mae")
    sweeps = list(report["sweeps"].values())
    fig, axes = plt.subplots(
        len(metrics), len(sweeps), figsize=(3.2 * len(sweeps), 2.4 * len(metrics)), squeeze=False
    )
    for col, sweep in enumerate(sweeps):
        values = [p["value"] for p in sweep["points"]]
        for row, metric in enumerate(metrics):
            ax = axes[row][col]
            for name, style in zip(PIPELINES, ("-o", "--s"), strict=True):
                ys = [p["pipelines"][name]["metrics"][metric] for p in sweep["points"]]
                ys = [np.nan if y is None else y for y in ys]
                ax.plot(values, ys, style, label="learned" if name == "cytometry" else "classical")
            ax.axvspan(sweep["spec"][0], sweep["spec"][1], color="0.9", zorder=0)
            if sweep["name"] == "cell_brightness":
                ax.set_xscale("log")
            if row == len(metrics) - 1:
                ax.set_xlabel(sweep["label"])
            if col == 0:
                ax.set_ylabel(metric)
            if row == 0 and col == 0:
                ax.legend(fontsize=8)
    fig.suptitle("Robustness sweep (grey: inside the imaging model's range)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def qc_signal_cost(n_fields: int = 4, size: int = 512, repeats: int = 5) -> dict[str, float]:
    """Median ms per field of the cell QC signals, and of the parts the coverage signals add.

    ``added_ms`` is the fitted background, the smoothed-threshold comparison, the aspect
    ratios and the merged-cell test: what ``cell_signals`` computes beyond the older SNR /
    size / type signals; ``merged_ms`` the merged-cell test alone (the waist of each
    elongated cell).
    """
    from overnight.steps import cell_shape, coverage, flags
    from overnight.steps.cells import focus_projection
    from overnight.synth.field import draw_field
    from overnight.synth.ranges import CytometryRanges

    rng = np.random.default_rng(SWEEP_SEED)
    fields = [draw_field(rng, size, CytometryRanges()) for _ in range(n_fields)]
    inputs = [(focus_projection(f.image[:, 0]), f.labels) for f in fields]
    total, added, merged = [], [], []
    for _ in range(repeats):
        for image, labels in inputs:
            start = time.perf_counter()
            flags.cell_signals(image, labels, 0.2, np.ones(int(labels.max())), 5.0)
            total.append(time.perf_counter() - start)
            start = time.perf_counter()
            distance = coverage.distance_to_cells(labels)
            background = coverage.background_level(image, distance > 8)
            coverage.cell_coverage(image, labels, background, 122, distance=distance)
            ratios = cell_shape.aspect_ratios(labels)
            middle = time.perf_counter()
            cell_shape.merged_cells_mask(labels, ratios, 1.8, 0.08)
            merged.append(time.perf_counter() - middle)
            added.append(time.perf_counter() - start)
    return {
        "size_px": size,
        "cell_signals_ms": 1000 * float(np.median(total)),
        "added_ms": 1000 * float(np.median(added)),
        "merged_ms": 1000 * float(np.median(merged)),
        "merged_max_ms": 1000 * float(np.max(merged)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fields", type=int, default=4, help="fields per point")
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--seed", type=int, default=SWEEP_SEED)
    parser.add_argument("--only", default=None, help="run one sweep (cell_brightness, ...)")
    parser.add_argument(
        "--values",
        type=float,
        nargs="+",
        default=None,
        help="with --only: sweep these values instead (e.g. a finer grid to tune flags on)",
    )
    parser.add_argument("--out", default="robustness", help="report name under bench/results/")
    parser.add_argument("--keep", type=Path, default=None, help="keep data and results here")
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="a --keep folder of an earlier run with the same --seed/--only/--values: take its "
        "scores and measure the learned pipeline's QC flags again, without running the networks",
    )
    parser.add_argument(
        "--qc-cost", action="store_true", help="only time the cell QC signals on 512² fields"
    )
    args = parser.parse_args()
    if args.qc_cost:
        print(json.dumps(qc_signal_cost()))
        return 0

    from overnight.logs import configure_logging

    configure_logging("WARNING", "text")
    start = time.perf_counter()
    report: dict[str, Any] = {
        "n_fields": args.fields,
        "size_px": args.size,
        "seed": args.seed,
        "reused": str(args.reuse) if args.reuse else None,
        "sweeps": {},
    }
    with tempfile.TemporaryDirectory(prefix="overnight-robustness-") as scratch:
        root = args.reuse or args.keep or Path(scratch)
        kept = json.loads((root / "report.json").read_text()) if args.reuse else None
        if kept and kept["seed"] != args.seed:
            raise ValueError(f"{root} holds seed {kept['seed']}, not --seed {args.seed}")
        for sweep in _sweeps():
            if args.only and sweep.name != args.only:
                continue
            values = tuple(args.values) if args.values and args.only else sweep.values
            points = [
                reuse_point(sweep, v, root, kept)
                if kept
                else run_point(sweep, v, args.fields, args.size, args.seed, root)
                for v in values
            ]
            report["sweeps"][sweep.name] = {
                "name": sweep.name,
                "label": sweep.label,
                "spec": list(sweep.spec),
                "points": points,
            }
            print(f"{sweep.name}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    report["flags"] = flag_quality(report)
    report["seconds"] = time.perf_counter() - start
    if kept:  # the run's own time; the re-measuring apart
        report["reuse_seconds"], report["seconds"] = report["seconds"], kept["seconds"]
    if args.keep:  # what --reuse reads
        (args.keep / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(report))
    plot(report, RESULTS / f"{args.out}.png")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
