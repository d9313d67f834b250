"""Skin-PK robustness sweep: where compartments and PK break as one parameter leaves its range.

For each swept parameter — drug SNR, structure-channel contrast, follicle diameter, follicle
count, depth sampling (planes per stack) — series are drawn in the project's ``spec`` look
(:mod:`overnight.synth.skin_look`) with that parameter fixed at each value, from inside
IMAGING_MODEL.md §2's range to well outside it, every other parameter drawn from §2. Each
series runs through the skin pipeline (the shipped model unless ``--model``) and is scored as
in :mod:`bench.accuracy_skin`: IoU per compartment (mean and worst), and the share of
compartments whose Cmax and AUC_last are within 10 % and Tmax within one sample.

The sweep also scores the QC flags of :mod:`overnight.skin.flags` per plane: of the planes the
model segmented badly (IoU of the plane's compartments, weighted by their pixels, < 0.8), how
many were flagged
(recall), and how many flagged planes were fine (false alarms).

Writes ``bench/results/robustness_skin.json``, ``.md`` and ``.png``.

    python -m bench.robustness_skin [--series 1] [--size 256] [--only drug_snr ...] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.accuracy_skin import RESULTS, TARGETS, _clean, iou_from_confusion

SWEEP_SEED = 733_2026  # never used for training, tuning or the accuracy hold-outs
BAD_PLANE_IOU = 0.8
#: a plane's follicle is scored when it covers at least this share of the plane in truth
FOLLICLE_MIN_SHARE = 0.005


@dataclass(frozen=True)
class Sweep:
    """One swept parameter: its values, the §2 (spec) range and the training range."""

    name: str
    label: str
    values: tuple[float, ...]
    spec: tuple[float, float] | None
    trained: tuple[float, float] | None


SWEEPS: tuple[Sweep, ...] = (
    Sweep("drug_snr", "drug SNR at Cmax", (1.0, 2.0, 3.0, 10.0, 30.0, 60.0), (3, 30), (2, 40)),
    Sweep(
        "contrast",
        "structure contrast (× spec)",
        (0.15, 0.3, 0.5, 1.0, 1.6, 2.2),
        (1.0, 1.0),
        (0.5, 1.5),
    ),
    Sweep(
        "follicle_diameter_um",
        "follicle diameter (µm)",
        (30.0, 50.0, 75.0, 100.0, 130.0, 160.0),
        (50, 100),
        (40, 120),
    ),
    Sweep("follicle_count", "follicles per plane", (1, 2, 4, 6), (1, 4), (1, 5)),
    Sweep("n_depths", "planes per stack", (2, 3, 4, 8, 12, 16), (4, 12), (3, 14)),
)


def _series_options(sweep: Sweep, value: float, size: int) -> dict[str, Any]:
    """``write_skin_dataset`` arguments that fix ``sweep``'s parameter at ``value``."""
    from overnight.synth.skin_look import SPEC_LOOK

    look = SPEC_LOOK
    if sweep.name.startswith("follicle"):
        # the generator keeps a follicle under 0.35 × the field: 512² px (256 µm) holds 160 µm
        size = max(size, 512)
    options: dict[str, Any] = {"size": size, "n_timepoints": 6, "n_depths": 5}
    if sweep.name == "drug_snr":
        options["drug_snr"] = float(value)
    elif sweep.name == "contrast":
        look = look.with_ranges(contrast=(float(value), float(value)))
    elif sweep.name == "follicle_diameter_um":
        look = look.with_ranges(follicle_diameter_um=(float(value), float(value)))
    elif sweep.name == "follicle_count":
        # room for the follicles: any field may hold them, and sizes at the low end of §2
        look = look.with_ranges(
            follicle_count=(int(value), int(value)),
            follicle_spacing_um=1.0,
            follicle_diameter_um=(50.0, 70.0),
        )
    elif sweep.name == "n_depths":
        options["n_depths"] = int(value)
    options["look"] = look
    return options


def score_series(folder: Path, model: Any, keep: Path | None = None) -> dict[str, Any]:
    """Run one written series; IoU, PK hits and per-plane flag records.

    ``keep``: a folder where each timepoint's stack, truth, class probabilities (float16),
    depths and time are saved as ``<image_id>.npz``, to study QC signals offline.
    """
    import tifffile

    from bench.accuracy_skin import pk_table
    from overnight.models.skin import class_probabilities
    from overnight.skin.flags import flag_planes
    from overnight.skin.pipeline import TimepointResult, analyse_series
    from overnight.skin.series import Timepoint, find_series, read_timepoint

    n = model.config.n_classes
    confusion = np.zeros((n, n), np.int64)
    probabilities: dict[str, np.ndarray] = {}
    planes: list[dict[str, Any]] = []

    def predict(timepoint: Timepoint) -> np.ndarray:
        probs = class_probabilities(model, read_timepoint(timepoint), timepoint.depths_um)
        probabilities[timepoint.image_id] = probs
        return np.argmax(probs, axis=1).astype(np.uint8)

    levels: dict[str, float] = {}

    def record(result: TimepointResult) -> None:
        image_id = result.timepoint.image_id
        truth = tifffile.imread(folder / "truth" / image_id / "labels.tif")
        pair = truth.astype(np.int64).ravel() * n + result.labels.astype(np.int64).ravel()
        confusion[:] += np.bincount(pair, minlength=n * n).reshape(n, n)
        levels.setdefault("pre_dose", result.drug_level_adu)
        probs = probabilities.pop(image_id)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            np.savez(
                keep / f"{image_id}.npz",
                stack=result.stack,
                truth=truth,
                probabilities=probs.astype(np.float16),
                depths_um=np.asarray(result.timepoint.depths_um, float),
                time_min=result.timepoint.time_min,
                drug_level_adu=levels["pre_dose"],
            )
        qualities = flag_planes(
            result.stack,
            result.labels,
            result.timepoint.depths_um,
            model.config.compartments,
            drug_level_adu=levels["pre_dose"],
            max_probability=probs.max(axis=1),
            expect_drug=result.timepoint.time_min > 0,
        )
        for z, quality in enumerate(qualities):
            plane = np.bincount(
                truth[z].astype(np.int64).ravel() * n + result.labels[z].astype(np.int64).ravel(),
                minlength=n * n,
            ).reshape(n, n)
            follicle = _follicle_iou(plane, model.config.compartments)
            planes.append(
                {
                    "image_id": image_id,
                    "z": z,
                    "iou": weighted_iou(plane),
                    "follicle_iou": None if follicle is None else round(follicle, 4),
                    "flags": [str(f) for f in quality.flags],
                    "segmentation_flags": [str(f) for f in quality.flags if f != "low_drug_snr"],
                    "mean_max_probability": round(quality.mean_max_probability, 4),
                    "unsure_share": round(quality.unsure_share, 4),
                    "follicle_max_probability": _clean(quality.follicle_max_probability),
                }
            )

    series = find_series(folder / "images")
    analysis = analyse_series(series, model, on_result=record, stored_labels=predict).analysis
    pk = pk_table(folder, series, analysis)
    iou = iou_from_confusion(confusion)[1:]
    return {"iou": iou, "pk": pk, "planes": planes}


def weighted_iou(confusion: np.ndarray) -> float:
    """IoU of each true compartment weighted by its pixels (a few stray pixels do not count)."""
    iou = iou_from_confusion(confusion)[1:]
    pixels = confusion.sum(axis=1)[1:].astype(float)
    keep = np.isfinite(iou) & (pixels > 0)
    return float(np.sum(iou[keep] * pixels[keep]) / max(pixels[keep].sum(), 1.0))


def _follicle_iou(confusion: np.ndarray, compartments: tuple[str, ...]) -> float | None:
    """IoU of the follicle in one plane; None where it is absent from truth and prediction or
    covers under ``FOLLICLE_MIN_SHARE`` of the plane in truth."""
    if "hair_follicle" not in compartments:
        return None
    k = compartments.index("hair_follicle") + 1
    true, predicted, both = confusion[k].sum(), confusion[:, k].sum(), confusion[k, k]
    if true < FOLLICLE_MIN_SHARE * confusion.sum():
        return None
    return float(both / (true + predicted - both))


def run_point(
    model: Any,
    sweep: Sweep,
    value: float,
    n_series: int,
    size: int,
    seed: int,
    keep: Path | None = None,
) -> dict[str, Any]:
    """Every series of one (parameter, value) point, scored together."""
    from overnight.synth.skin import write_skin_dataset

    ious, tables, planes = [], [], []
    with tempfile.TemporaryDirectory(prefix="skin-sweep-") as scratch:
        for i in range(n_series):
            folder = Path(scratch) / f"s{i}"
            write_skin_dataset(
                folder, seed + i, sample=f"sweep{i}", **_series_options(sweep, value, size)
            )
            kept = None if keep is None else keep / sweep.name / f"{value:g}" / f"s{i}"
            scored = score_series(folder, model, kept)
            ious.append(scored["iou"])
            tables.append(scored["pk"])
            planes += scored["planes"]
    iou = np.nanmean(np.stack(ious), axis=0)
    pk = pd.concat(tables, ignore_index=True)
    names = model.config.compartments
    return {
        "value": value,
        "iou": {name: _clean(v) for name, v in zip(names, iou, strict=True)},
        "mean_iou": _clean(np.nanmean(iou)),
        "min_iou": _clean(np.nanmin(iou)),
        "tmax_ok": float(pk["tmax_ok"].mean()),
        "cmax_ok": float(pk["cmax_ok"].mean()),
        "auc_last_ok": float(pk["auc_last_ok"].mean()),
        "n_compartment_series": len(pk),
        "planes": planes,
    }


def flag_scores(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Recall of the segmentation flags on bad planes, and their false alarms.

    ``false_alarm_share``: flagged planes that were fine (over flagged planes);
    ``fine_planes_flagged``: fine planes that were flagged (over fine planes, the cytometry
    target's measure, ≤ 0.10); of those, ``fine_flagged_wrong_follicle`` had a follicle IoU
    below ``BAD_PLANE_IOU`` (the plane as a whole fine, its follicle not).
    """
    planes = [p for point in points for p in point["planes"]]
    bad = [p for p in planes if p["iou"] < BAD_PLANE_IOU]
    fine = [p for p in planes if p["iou"] >= BAD_PLANE_IOU]
    flagged = [p for p in planes if p["segmentation_flags"]]
    fine_flagged = [p for p in fine if p["segmentation_flags"]]
    follicle_bad = [
        p for p in planes if p.get("follicle_iou") is not None and p["follicle_iou"] < 0.5
    ]
    counts = {
        name: {
            flag: sum(flag in p["segmentation_flags"] for p in group)
            for flag in sorted({f for p in planes for f in p["segmentation_flags"]})
        }
        for name, group in (("bad", bad), ("fine", fine))
    }
    return {
        "bad_plane_iou": BAD_PLANE_IOU,
        "n_planes": len(planes),
        "n_bad": len(bad),
        "n_flagged": len(flagged),
        "recall": _clean(sum(bool(p["segmentation_flags"]) for p in bad) / len(bad))
        if bad
        else None,
        "false_alarm_share": _clean(sum(p["iou"] >= BAD_PLANE_IOU for p in flagged) / len(flagged))
        if flagged
        else None,
        "fine_planes_flagged": _clean(len(fine_flagged) / len(fine)) if fine else None,
        "fine_flagged_wrong_follicle": sum(
            p.get("follicle_iou") is not None and p["follicle_iou"] < BAD_PLANE_IOU
            for p in fine_flagged
        ),
        "n_follicle_bad": len(follicle_bad),
        "follicle_bad_recall": _clean(
            sum(bool(p["segmentation_flags"]) for p in follicle_bad) / len(follicle_bad)
        )
        if follicle_bad
        else None,
        "flag_counts": counts,
    }


def markdown(report: dict[str, Any]) -> str:
    """The sweep as Markdown: one table per parameter."""
    lines = [
        "# Skin PK robustness sweep",
        "",
        f"Model `{report['model']}`; {report['series_per_point']} series per point, "
        f"{report['size_px']}² px (follicle sweeps 512² px: a follicle stays under 0.35 × the "
        "field), 6 timepoints, 5 depths (unless swept), `spec` look. "
        f"Reproduce: `{report['command']}` ({report['wall_s']:.0f} s). "
        "In range: the value lies in IMAGING_MODEL.md §2's range (trained: in the training "
        "range). Hits: share of compartment × series within target (Tmax ±1 sample, Cmax and "
        "AUC_last within 10 %).",
        "",
    ]
    for sweep in report["sweeps"].values():
        lines += [
            f"## {sweep['label']}",
            "",
            f"§2 range {sweep['spec']}, training range {sweep['trained']}.",
            "",
            "| value | in §2 | trained | mean IoU | worst IoU | hair follicle IoU "
            "| Tmax hits | Cmax hits | AUC_last hits |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for p in sweep["points"]:
            lines.append(
                f"| {p['value']:g} | {'yes' if p['in_spec'] else 'no'} "
                f"| {'yes' if p['in_training'] else 'no'} | {p['mean_iou']:.3f} "
                f"| {p['min_iou']:.3f} | {p['iou'].get('hair_follicle') or float('nan'):.3f} "
                f"| {p['tmax_ok']:.0%} | {p['cmax_ok']:.0%} | {p['auc_last_ok']:.0%} |"
            )
        lines.append("")
    f = report["flags"]

    def share(value: float | None) -> str:
        return "–" if value is None else format(value, ".1%")

    recall, false_alarms = share(f["recall"]), share(f["false_alarm_share"])
    lines += [
        "## QC flags on planes",
        "",
        f"{f['n_planes']} planes, {f['n_bad']} segmented badly (pixel-weighted IoU < "
        f"{f['bad_plane_iou']}), "
        f"{f['n_flagged']} flagged by a segmentation flag (structure contrast, confidence, "
        f"follicle confidence, implausible compartments). Recall on bad planes: "
        f"**{recall}** (target ≥ 90 %); fine planes flagged: "
        f"**{share(f.get('fine_planes_flagged'))}** (target ≤ 10 %; "
        f"{f.get('fine_flagged_wrong_follicle', 0)} of them with a follicle IoU < "
        f"{f['bad_plane_iou']}); flagged planes that were fine: {false_alarms}. Planes whose "
        f"follicle (≥ {FOLLICLE_MIN_SHARE:.1%} of the plane) has IoU < 0.5: "
        f"{f.get('n_follicle_bad', 0)}, flagged {share(f.get('follicle_bad_recall'))}. "
        "Thresholds chosen on seeds 4242–4244 (`QcThresholds`); the drug SNR sweep's six "
        "points share one segmentation, so its planes count six times.",
        "",
        "| flag | raised on bad planes | raised on fine planes |",
        "| --- | --- | --- |",
        *(
            f"| `{flag}` | {f['flag_counts']['bad'].get(flag, 0)} "
            f"| {f['flag_counts']['fine'].get(flag, 0)} |"
            for flag in sorted({*f["flag_counts"]["bad"], *f["flag_counts"]["fine"]})
        ),
        "",
    ]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """One panel per parameter: mean and worst IoU, Cmax and AUC_last hits; ranges shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = list(report["sweeps"].values())
    fig, axes = plt.subplots(1, len(sweeps), figsize=(4 * len(sweeps), 3.6), squeeze=False)
    for ax, sweep in zip(axes[0], sweeps, strict=True):
        x = [p["value"] for p in sweep["points"]]
        for key, style, label in (
            ("mean_iou", "o-", "mean IoU"),
            ("min_iou", "s--", "worst IoU"),
            ("cmax_ok", "^-", "Cmax hits"),
            ("auc_last_ok", "v:", "AUC_last hits"),
        ):
            ax.plot(
                x,
                [p[key] if p[key] is not None else math.nan for p in sweep["points"]],
                style,
                label=label,
            )
        if sweep["trained"]:
            ax.axvspan(*sweep["trained"], color="0.9", label="trained")
        if sweep["spec"]:
            low, high = sweep["spec"]
            ax.axvspan(low, high if high > low else low * 1.02, color="0.75", label="§2")
        ax.axhline(TARGETS["iou"], color="k", lw=0.5)
        if sweep["name"] in ("drug_snr",):
            ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(sweep["label"])
    axes[0][0].set_ylabel("IoU / share within target")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"skin model {report['model']}: robustness ({report['command']})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1, help="series per point")
    parser.add_argument("--size", type=int, default=256, help="plane side (px)")
    parser.add_argument("--only", nargs="+", choices=[s.name for s in SWEEPS], default=None)
    parser.add_argument("--model", default=None, help="model folder [default: shipped]")
    parser.add_argument("--seed", type=int, default=SWEEP_SEED)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="save each timepoint's stack, truth and probabilities here (tuning seeds only)",
    )
    args = parser.parse_args()

    from overnight.models.skin import load_skin_model

    model = load_skin_model(args.model)
    start = time.perf_counter()
    sweeps: dict[str, Any] = {}
    for sweep in SWEEPS:
        if args.only and sweep.name not in args.only:
            continue
        points = []
        for value in sweep.values:
            point = run_point(model, sweep, value, args.series, args.size, args.seed, args.keep)
            point["in_spec"] = bool(sweep.spec and sweep.spec[0] <= value <= sweep.spec[1])
            point["in_training"] = bool(
                sweep.trained and sweep.trained[0] <= value <= sweep.trained[1]
            )
            points.append(point)
            print(
                f"{sweep.name} = {value:g}: mean IoU {point['mean_iou']:.3f}, worst "
                f"{point['min_iou']:.3f}, Cmax hits {point['cmax_ok']:.0%}",
                flush=True,
            )
        sweeps[sweep.name] = {
            "name": sweep.name,
            "label": sweep.label,
            "spec": sweep.spec,
            "trained": sweep.trained,
            "points": points,
        }
    command = (
        f"python -m bench.robustness_skin --series {args.series} --size {args.size}"
        + (f" --only {' '.join(args.only)}" if args.only else "")
        + (f" --seed {args.seed}" if args.seed != SWEEP_SEED else "")
        + (f" --model {args.model}" if args.model else "")
    )
    report = {
        "model": model.version,
        "command": command,
        "series_per_point": args.series,
        "size_px": args.size,
        "seed": args.seed,
        "sweeps": sweeps,
        "flags": flag_scores([p for s in sweeps.values() for p in s["points"]]),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "robustness_skin.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "robustness_skin.md").write_text(markdown(report))
    plot(report, args.out / "robustness_skin.png")
    print(markdown(report))


if __name__ == "__main__":
    main()
