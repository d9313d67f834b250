"""Skin-PK accuracy on fresh synthetic hold-out series: compartment IoU and PK recovery.

Draws hold-out series with seeds the training never used (the model ranges: 4–12 depths,
6–16 irregular timepoints over 2–4 h, drug SNR 3–30), runs the pipeline
(:func:`overnight.skin.pipeline.analyse_series` with the shipped model) and scores:

- compartment IoU per class over every plane of every timepoint (target: mean ≥ 0.85);
- PK recovery per compartment against the generator's truth (its exact mean signal per
  plane with the true labels, pooled over depth the same way): Tmax within one sampling
  interval (at most one sample away), Cmax and AUC_last within 10 %.

Writes ``bench/results/accuracy_skin.json`` and ``accuracy_skin.md``.

    python -m bench.accuracy_skin [--n-series 6] [--sizes 256 512] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).parent / "results"
HOLDOUT_SEED = 515_2026
TARGETS = {"mean_iou": 0.85, "rel_error": 0.10, "tmax_samples": 1}


def _clean(value: Any) -> Any:
    if isinstance(value, np.floating | np.integer):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def score_series(folder: Path, model: Any) -> tuple[np.ndarray, pd.DataFrame, float]:
    """Run the pipeline on one written series; (confusion matrix, PK table, seconds per stack)."""
    import tifffile

    from overnight.analysis.profiles import nca_for_profiles
    from overnight.skin.pipeline import TimepointResult, analyse_series
    from overnight.skin.series import find_series

    n = model.config.n_classes
    confusion = np.zeros((n, n), np.int64)
    seconds: list[float] = []

    def compare(result: TimepointResult) -> None:
        truth = tifffile.imread(folder / "truth" / result.timepoint.image_id / "labels.tif")
        pair = truth.astype(np.int64).ravel() * n + result.labels.astype(np.int64).ravel()
        confusion[:] += np.bincount(pair, minlength=n * n).reshape(n, n)
        seconds.append(result.seconds)

    series = find_series(folder / "images")
    analysis = analyse_series(series, model, on_result=compare).analysis
    truth_nca = nca_for_profiles(pd.read_csv(folder / "truth" / "profiles.csv"))
    times = np.array([tp.time_min for tp in series.timepoints])
    merged = truth_nca.merge(analysis.nca, on="compartment", suffixes=("_true", "_rec"))
    rows = []
    for _, row in merged.iterrows():
        true_index = int(np.argmin(np.abs(times - row["tmax_true"])))
        rec_index = (
            int(np.argmin(np.abs(times - row["tmax_rec"])))
            if math.isfinite(row["tmax_rec"])
            else -99
        )
        rows.append(
            {
                "compartment": row["compartment"],
                "tmax_true": row["tmax_true"],
                "tmax_rec": row["tmax_rec"],
                "tmax_samples_off": abs(rec_index - true_index),
                "cmax_true": row["cmax_true"],
                "cmax_rec": row["cmax_rec"],
                "cmax_rel_error": row["cmax_rec"] / row["cmax_true"] - 1,
                "auc_last_true": row["auc_last_true"],
                "auc_last_rec": row["auc_last_rec"],
                "auc_last_rel_error": row["auc_last_rec"] / row["auc_last_true"] - 1,
            }
        )
    table = pd.DataFrame(rows)
    table["tmax_ok"] = table["tmax_samples_off"] <= TARGETS["tmax_samples"]
    table["cmax_ok"] = table["cmax_rel_error"].abs() <= TARGETS["rel_error"]
    table["auc_last_ok"] = table["auc_last_rel_error"].abs() <= TARGETS["rel_error"]
    return confusion, table, float(np.median(seconds))


def iou_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """IoU per class from a (truth × predicted) confusion matrix; NaN for classes in neither."""
    inter = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    lines = [
        "# Skin PK accuracy on synthetic hold-out series",
        "",
        f"Model `{report['model']}`; {report['n_series']} series (seeds {report['seeds']}), "
        f"planes of {' and '.join(f'{s}²' for s in report['sizes_px'])} px (alternating), "
        f"{report['n_stacks']} timepoint stacks, {report['n_planes']} planes. "
        f"Reproduce: `{report['command']}`.",
        "",
        "## Compartment IoU (all planes pooled; target mean ≥ 0.85)",
        "",
        "| compartment | IoU |",
        "| --- | --- |",
    ]
    lines += [
        f"| {name} | {value:.3f} |" for name, value in report["iou"].items() if value is not None
    ]
    lines += [f"| **mean** | **{report['mean_iou']:.3f}** |", ""]
    lines += [
        "## PK recovery per compartment (Tmax within one sample, Cmax and AUC_last within 10 %)",
        "",
        "| compartment | Tmax ok | Cmax ok | AUC_last ok | median abs Cmax error "
        "| median abs AUC_last error |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in report["pk_by_compartment"].items():
        lines.append(
            f"| {name} | {s['tmax_ok']:.0f}/{s['n']:.0f} | {s['cmax_ok']:.0f}/{s['n']:.0f} "
            f"| {s['auc_last_ok']:.0f}/{s['n']:.0f} | {100 * s['median_abs_cmax_error']:.1f} % "
            f"| {100 * s['median_abs_auc_last_error']:.1f} % |"
        )
    total = report["pk_total"]
    lines += [
        f"| **all** | **{total['tmax_ok']}/{total['n']}** | **{total['cmax_ok']}/{total['n']}** "
        f"| **{total['auc_last_ok']}/{total['n']}** | | |",
        "",
        f"Worst cases: Tmax {report['worst']['tmax_samples_off']} sample(s) off, Cmax "
        f"{100 * report['worst']['cmax_rel_error']:.1f} %, AUC_last "
        f"{100 * report['worst']['auc_last_rel_error']:.1f} %.",
        "",
        "Median time per timepoint stack (read, segment, measure): "
        f"{report['median_s_per_stack']:.2f} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-series", type=int, default=6)
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[256, 512],
        help="plane sides (px), used in turn by the series",
    )
    parser.add_argument(
        "--model", default=None, help="model folder [default: the shipped skin model]"
    )
    parser.add_argument("--seed", type=int, default=HOLDOUT_SEED)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import tifffile

    from overnight.models.skin import load_skin_model
    from overnight.synth.skin import write_skin_dataset

    model = load_skin_model(args.model)
    n = model.config.n_classes
    confusion = np.zeros((n, n), np.int64)
    tables, times, seeds, n_stacks, n_planes = [], [], [], 0, 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="skin-holdout-") as scratch:
        for i in range(args.n_series):
            seed = args.seed + i
            folder = Path(scratch) / f"series{i}"
            size = args.sizes[i % len(args.sizes)]
            paths = write_skin_dataset(folder, seed, size=size, sample=f"holdout{i}")
            n_planes += sum(tifffile.imread(p).shape[0] for p in paths)
            part, table, seconds = score_series(folder, model)
            confusion += part
            tables.append(table.assign(seed=seed))
            times.append(seconds)
            seeds.append(seed)
            n_stacks += len(paths)
            print(
                f"series {i} (seed {seed}, {size}² px): {len(paths)} stacks, IoU "
                f"{np.nanmean(iou_from_confusion(part)[1:]):.3f}"
            )
    iou = iou_from_confusion(confusion)
    pk = pd.concat(tables, ignore_index=True)
    by = pk.groupby("compartment").agg(
        n=("tmax_ok", "size"),
        tmax_ok=("tmax_ok", "sum"),
        cmax_ok=("cmax_ok", "sum"),
        auc_last_ok=("auc_last_ok", "sum"),
        median_abs_cmax_error=("cmax_rel_error", lambda s: float(np.median(np.abs(s)))),
        median_abs_auc_last_error=("auc_last_rel_error", lambda s: float(np.median(np.abs(s)))),
    )
    names = ("none", *model.config.compartments)
    command = (
        f"python -m bench.accuracy_skin --n-series {args.n_series} "
        f"--sizes {' '.join(map(str, args.sizes))} "
        f"--seed {args.seed}"
    )
    report = {
        "model": model.version,
        "command": command,
        "n_series": args.n_series,
        "seeds": seeds,
        "sizes_px": args.sizes,
        "n_stacks": n_stacks,
        "n_planes": n_planes,
        "iou": {name: _clean(v) for name, v in zip(names, iou, strict=True) if name != "none"},
        "mean_iou": _clean(np.nanmean(iou[1:])),
        "targets": TARGETS,
        "pk_by_compartment": {
            k: {c: _clean(v) for c, v in row.items()} for k, row in by.iterrows()
        },
        "pk_total": {c: int(pk[c].sum()) for c in ("tmax_ok", "cmax_ok", "auc_last_ok")}
        | {"n": len(pk)},
        "worst": {
            c: _clean(pk[c].abs().max())
            for c in ("tmax_samples_off", "cmax_rel_error", "auc_last_rel_error")
        },
        "pk_rows": [{k: _clean(v) for k, v in row.items()} for row in pk.to_dict(orient="records")],
        "median_s_per_stack": float(np.median(times)),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy_skin.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "accuracy_skin.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
