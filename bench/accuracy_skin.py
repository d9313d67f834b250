"""Skin-PK accuracy on fresh synthetic hold-out series: compartment IoU and PK recovery.

Draws hold-out series with seeds the training never used, in two generator looks
(:mod:`overnight.synth.skin_look`): ``spec`` — the project's own rendering of
IMAGING_MODEL.md §2 — and ``evaluation`` — a deliberately different rendering (acinar
lobules, dark follicle rims, bright fat membranes, blur, vignetting, irregular depths) that
neither training nor any choice of parameters ever saw. Each series runs through the pipeline
(:func:`overnight.skin.pipeline.analyse_series` with the model) and is scored:

- compartment IoU per class over every plane of every timepoint (target: each ≥ 0.90);
- PK recovery per compartment against the generator's truth (its exact mean signal per
  plane with the true labels, pooled over depth the same way): Tmax within one sampling
  interval (at most one sample away), Cmax and AUC_last within 10 % (target: ≥ 90 % of
  compartment × series);
- the same PK recovery with the **true** labels (``oracle``): what the signal estimator
  (mean per compartment, pre-dose background) loses by itself, so that PK misses can be
  told apart from segmentation misses; and the median signed Cmax / AUC_last error (bias).

Writes ``bench/results/accuracy_skin.json`` and ``accuracy_skin.md``.

    python -m bench.accuracy_skin [--n-series 6] [--sizes 256 512] [--looks spec evaluation]
                                  [--model DIR]
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
TARGETS = {"iou": 0.90, "rel_error": 0.10, "tmax_samples": 1, "hit_rate": 0.90}
LOOKS = ("spec", "evaluation")


def _clean(value: Any) -> Any:
    if isinstance(value, np.floating | np.integer):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def score_series(
    folder: Path, model: Any, oracle: bool = False
) -> tuple[np.ndarray, pd.DataFrame, float]:
    """Run the pipeline on one written series; (confusion matrix, PK table, seconds per stack).

    ``oracle`` measures the drug with the true labels instead of the model's.
    """
    import tifffile

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

    def truth_labels(timepoint: Any) -> np.ndarray | None:
        return tifffile.imread(folder / "truth" / timepoint.image_id / "labels.tif")

    series = find_series(folder / "images")
    analysis = analyse_series(
        series, model, on_result=compare, stored_labels=truth_labels if oracle else None
    ).analysis
    table = pk_table(folder, series, analysis)
    return confusion, table, float(np.median(seconds))


def pk_table(folder: Path, series: Any, analysis: Any) -> pd.DataFrame:
    """Recovered against true NCA per compartment, with the Tmax / Cmax / AUC_last hits.

    ``series`` is the :class:`~overnight.skin.series.SkinSeries` analysed and ``analysis``
    its :class:`~overnight.skin.pipeline.PkAnalysis`; the truth is ``truth/profiles.csv``.
    """
    from overnight.analysis.profiles import nca_for_profiles

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
    return table


def iou_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """IoU per class from a (truth × predicted) confusion matrix; NaN for classes in neither."""
    inter = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def pk_summary(pk: pd.DataFrame) -> dict[str, Any]:
    """Hit counts per compartment and overall, median errors and signed bias of a PK table."""
    by = pk.groupby("compartment").agg(
        n=("tmax_ok", "size"),
        tmax_ok=("tmax_ok", "sum"),
        cmax_ok=("cmax_ok", "sum"),
        auc_last_ok=("auc_last_ok", "sum"),
        median_abs_cmax_error=("cmax_rel_error", lambda s: float(np.median(np.abs(s)))),
        median_abs_auc_last_error=("auc_last_rel_error", lambda s: float(np.median(np.abs(s)))),
        median_cmax_bias=("cmax_rel_error", "median"),
        median_auc_last_bias=("auc_last_rel_error", "median"),
    )
    total = {c: int(pk[c].sum()) for c in ("tmax_ok", "cmax_ok", "auc_last_ok")} | {"n": len(pk)}
    return {
        "by_compartment": {k: {c: _clean(v) for c, v in row.items()} for k, row in by.iterrows()},
        "total": total,
        "hit_rate": {
            c: total[c] / max(total["n"], 1) for c in ("tmax_ok", "cmax_ok", "auc_last_ok")
        },
        "worst": {
            c: _clean(pk[c].abs().max())
            for c in ("tmax_samples_off", "cmax_rel_error", "auc_last_rel_error")
        },
    }


def evaluate_look(
    model: Any, look: str, n_series: int, sizes: list[int], seed: int, oracle: bool = True
) -> dict[str, Any]:
    """Draw ``n_series`` hold-out series in ``look``, run and score them (one report)."""
    import tifffile

    from overnight.synth.skin import write_skin_dataset

    n = model.config.n_classes
    confusion = np.zeros((n, n), np.int64)
    tables, oracle_tables, times, seeds, n_stacks, n_planes = [], [], [], [], 0, 0
    with tempfile.TemporaryDirectory(prefix=f"skin-holdout-{look}-") as scratch:
        for i in range(n_series):
            series_seed = seed + i
            folder = Path(scratch) / f"series{i}"
            size = sizes[i % len(sizes)]
            paths = write_skin_dataset(
                folder, series_seed, size=size, sample=f"holdout{i}", look=look
            )
            n_planes += sum(tifffile.imread(p).shape[0] for p in paths)
            part, table, seconds = score_series(folder, model)
            confusion += part
            tables.append(table.assign(seed=series_seed))
            if oracle:
                oracle_tables.append(score_series(folder, model, oracle=True)[1])
            times.append(seconds)
            seeds.append(series_seed)
            n_stacks += len(paths)
            print(
                f"{look} series {i} (seed {series_seed}, {size}² px): {len(paths)} stacks, "
                f"IoU {np.nanmean(iou_from_confusion(part)[1:]):.3f}",
                flush=True,
            )
    iou = iou_from_confusion(confusion)
    pk = pd.concat(tables, ignore_index=True)
    names = ("none", *model.config.compartments)
    report: dict[str, Any] = {
        "look": look,
        "n_series": n_series,
        "seeds": seeds,
        "sizes_px": sizes,
        "n_stacks": n_stacks,
        "n_planes": n_planes,
        "iou": {name: _clean(v) for name, v in zip(names, iou, strict=True) if name != "none"},
        "mean_iou": _clean(np.nanmean(iou[1:])),
        "min_iou": _clean(np.nanmin(iou[1:])),
        "pk": pk_summary(pk),
        "pk_rows": [{k: _clean(v) for k, v in row.items()} for row in pk.to_dict(orient="records")],
        "median_s_per_stack": float(np.median(times)),
    }
    if oracle:
        report["pk_oracle"] = pk_summary(pd.concat(oracle_tables, ignore_index=True))
    return report


def _pk_table(title: str, summary: dict[str, Any]) -> list[str]:
    lines = [
        title,
        "",
        "| compartment | Tmax ok | Cmax ok | AUC_last ok | median abs Cmax error "
        "| median abs AUC_last error | median Cmax bias | median AUC_last bias |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in summary["by_compartment"].items():
        lines.append(
            f"| {name} | {s['tmax_ok']:.0f}/{s['n']:.0f} | {s['cmax_ok']:.0f}/{s['n']:.0f} "
            f"| {s['auc_last_ok']:.0f}/{s['n']:.0f} | {100 * s['median_abs_cmax_error']:.1f} % "
            f"| {100 * s['median_abs_auc_last_error']:.1f} % "
            f"| {100 * s['median_cmax_bias']:+.1f} % | {100 * s['median_auc_last_bias']:+.1f} % |"
        )
    total = summary["total"]
    lines += [
        f"| **all** | **{total['tmax_ok']}/{total['n']}** | **{total['cmax_ok']}/{total['n']}** "
        f"| **{total['auc_last_ok']}/{total['n']}** | | | | |",
        "",
        f"Worst cases: Tmax {summary['worst']['tmax_samples_off']} sample(s) off, Cmax "
        f"{100 * summary['worst']['cmax_rel_error']:.1f} %, AUC_last "
        f"{100 * summary['worst']['auc_last_rel_error']:.1f} %.",
        "",
    ]
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables: a summary over looks, then one section per look."""
    looks = report["looks"]
    names = list(next(iter(looks.values()))["iou"])
    lines = [
        "# Skin PK accuracy on synthetic hold-out series",
        "",
        f"Model `{report['model']}`. Looks: "
        + ", ".join(f"`{name}`" for name in looks)
        + " (`spec`: the project's own rendering of IMAGING_MODEL.md §2; "
        + ("`training`: the widened look trained on; " if "training" in looks else "")
        + "`evaluation`: a deliberately different rendering, never trained or tuned on). "
        f"Reproduce: `{report['command']}` ({report['wall_s']:.0f} s).",
        "",
        "## Summary (targets: every compartment IoU ≥ 0.90; Cmax, AUC_last within 10 % and "
        "Tmax within one sample in ≥ 90 % of compartment × series)",
        "",
        "| look | " + " | ".join(names) + " | mean IoU | Tmax ok | Cmax ok | AUC_last ok |",
        "| --- | " + " | ".join("---" for _ in names) + " | --- | --- | --- | --- |",
    ]
    for look, r in looks.items():
        total = r["pk"]["total"]
        lines.append(
            f"| {look} | "
            + " | ".join(f"{r['iou'][n]:.3f}" if r["iou"][n] is not None else "–" for n in names)
            + f" | {r['mean_iou']:.3f} | {total['tmax_ok']}/{total['n']} "
            f"| {total['cmax_ok']}/{total['n']} | {total['auc_last_ok']}/{total['n']} |"
        )
    lines.append("")
    for look, r in looks.items():
        lines += [
            f"## Look `{look}`",
            "",
            f"{r['n_series']} series (seeds {r['seeds'][0]}–{r['seeds'][-1]}), planes of "
            f"{' and '.join(f'{s}²' for s in r['sizes_px'])} px (alternating), "
            f"{r['n_stacks']} timepoint stacks, {r['n_planes']} planes; median "
            f"{r['median_s_per_stack']:.2f} s per stack (read, segment, measure).",
            "",
        ]
        lines += _pk_table("PK recovery with the model's compartments:", r["pk"])
        if "pk_oracle" in r:
            lines += _pk_table(
                "PK recovery with the true compartments (the signal estimator alone):",
                r["pk_oracle"],
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-series", type=int, default=6, help="series per look")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[256, 512],
        help="plane sides (px), used in turn by the series",
    )
    parser.add_argument(
        "--looks",
        nargs="+",
        default=list(LOOKS),
        choices=["spec", "training", "evaluation"],
        help="generator looks ('training': to choose settings on seeds of one's own only)",
    )
    parser.add_argument(
        "--model", default=None, help="model folder [default: the shipped skin model]"
    )
    parser.add_argument("--seed", type=int, default=HOLDOUT_SEED)
    parser.add_argument("--no-oracle", action="store_true", help="skip the true-label PK")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="accuracy_skin", help="file name stem of the results")
    args = parser.parse_args()

    from overnight.models.skin import load_skin_model

    model = load_skin_model(args.model)
    start = time.perf_counter()
    looks = {
        look: evaluate_look(
            model, look, args.n_series, args.sizes, args.seed, oracle=not args.no_oracle
        )
        for look in args.looks
    }
    command = (
        f"python -m bench.accuracy_skin --n-series {args.n_series} "
        f"--sizes {' '.join(map(str, args.sizes))} --looks {' '.join(args.looks)} "
        f"--seed {args.seed}" + (f" --model {args.model}" if args.model else "")
    )
    report = {
        "model": model.version,
        "command": command,
        "targets": TARGETS,
        "looks": looks,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
