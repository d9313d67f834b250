"""``make bench-accuracy``: the learned and the classical pipeline on fresh hold-out images.

Draws two hold-out sets with a seed the training never used (24 fields of 512² px each across
the whole imaging model: body 10–400 ADU, SNR 4–20): ``own`` with the generator's standard look
(what training draws from, at the spec's ranges) and ``evaluation`` with the *alternate* look
family (``EVALUATION_RANGES``: other background, illumination, texture, rim and spot profile;
never used for training or tuning). Both pipelines run on the same images, are scored with
:mod:`overnight.evaluation.cytometry`, and broken down by body brightness and SNR, with a check
that the learned pipeline is no worse than the classical one in any bin (cell F1, types).
Writes ``bench/results/accuracy.json`` and ``.md``. With ``--dsb-data DIR`` it also scores the
nuclei model and classical Otsu + watershed on the model's validation images.
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
HOLDOUT_SEED = 777_2026
PIPELINES = ("cytometry", "cytometry-classical")
TARGETS = {
    "cell_f1": 0.99,
    "mean_iou": 0.95,
    "type_accuracy": 0.99,
    "count_mae": 0.8,
    "pnp_f1": 0.96,
}
#: Bins of the body signal (ADU above the offset) and of the single-particle SNR.
BRIGHTNESS_BINS = (0.0, 20.0, 40.0, 100.0, 1e9)
SNR_BINS = (0.0, 8.0, 12.0, 16.0, 1e9)
#: Learned minus classical may fall this far below 0 in a bin before the bin counts as worse.
BIN_TOLERANCE = 0.005


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return _clean(value.item())
    return value


def _table(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def run_pipeline(name: str, paths: list[Path], out: Path) -> dict[str, Any]:
    """Run pipeline ``name`` over ``paths`` into ``out``; wall time and mean step timings."""
    from overnight.pipeline.batch import BatchOptions, run_batch

    start = time.perf_counter()
    outcomes = run_batch(
        paths, BatchOptions(pipeline=name, out_url=str(out), force=True), workers=1
    )
    seconds = time.perf_counter() - start
    failed = [o for o in outcomes if o.status == "failed"]
    steps: dict[str, list[float]] = {}
    for outcome in outcomes:
        for step, s in outcome.step_timings_s.items():
            steps.setdefault(step, []).append(s)
    return {
        "seconds": round(seconds, 1),
        "failed": [f"{o.image_id}: {o.reason}" for o in failed],
        "mean_step_s": {k: round(float(np.mean(v)), 3) for k, v in steps.items()},
    }


def qc_flags(results: Path) -> dict[str, Any]:
    """Per image: the QC flags of its ``result.json`` (empty when the pipeline wrote none)."""
    out: dict[str, Any] = {}
    for path in sorted(results.glob("*/result.json")):
        record = json.loads(path.read_text())
        qc = record.get("qc") or {}
        out[path.parent.name] = {"flags": qc.get("flags", []), "doubt": qc.get("doubt", 0)}
    return out


def score(truth: Path, results: Path) -> dict[str, Any]:
    """Metrics of one pipeline's results, with count-error tables and per-bin metrics."""
    from overnight.evaluation import count_error_table, score_dataset
    from overnight.evaluation.breakdown import field_table, metrics_by_bin

    ds = score_dataset(truth, results)
    fields = field_table(ds, truth)
    summary = {k: _clean(v) for k, v in ds.summary().items()}
    matched = ds.cells[ds.cells["matched"].astype(bool)]
    summary["count_bias"] = _clean(float((matched["pred_count"] - matched["true_count"]).mean()))
    summary["count_within_sqrt_n"] = _clean(
        float((matched["abs_error"] <= np.sqrt(matched["true_count"]).clip(lower=1.0)).mean())
    )
    flags = qc_flags(results)
    per_field = [
        {
            "image_id": row["image_id"],
            "cell_f1": _clean(row["cell_f1"]),
            "type_accuracy": _clean(row["type_accuracy"]),
            "count_mae": _clean(row["count_mae"]),
            "pnp_f1": _clean(row["pnp_f1"]),
            "cell_signal_adu": _clean(row.get("param_cell_signal_adu")),
            "snr": _clean(row.get("param_snr")),
            **flags.get(row["image_id"], {"flags": [], "doubt": 0}),
        }
        for row in fields.to_dict(orient="records")
    ]
    return {
        "metrics": summary,
        "count_error_by_snr": _table(count_error_table(ds, "snr")),
        "count_error_by_true_count": _table(count_error_table(ds, "true_count")),
        "by_brightness": _table(metrics_by_bin(fields, "param_cell_signal_adu", BRIGHTNESS_BINS)),
        "by_snr": _table(metrics_by_bin(fields, "param_snr", SNR_BINS)),
        "fields": per_field,
    }


def worse_bins(learned: dict[str, Any], classical: dict[str, Any]) -> list[str]:
    """Bins where the learned pipeline's cell F1 or type accuracy is below the classical one's."""
    worse = []
    for table in ("by_brightness", "by_snr"):
        for mine, theirs in zip(learned[table], classical[table], strict=True):
            for metric in ("cell_f1", "type_accuracy"):
                a, b = mine.get(metric), theirs.get(metric)
                if a is not None and b is not None and a < b - BIN_TOLERANCE:
                    worse.append(f"{table} {mine['bin']}: {metric} {a:.3f} < {b:.3f}")
    return worse


def score_nuclei(dsb_dir: Path) -> dict[str, Any]:
    """AP@0.5 and F1 of the nuclei model and of Otsu + watershed on its validation images."""
    from overnight.evaluation.matching import match_labels
    from overnight.models.cells import CellModel
    from overnight.models.cells_training import SegmentationScore
    from overnight.models.datasets import read_dataset
    from overnight.models.loading import resolve_model_dir
    from overnight.steps.cells import cell_foreground, split_touching_cells

    model_dir = resolve_model_dir("nuclei-dsb2018", "cells")
    card = json.loads((model_dir / "card.json").read_text())
    model = CellModel.load(model_dir)
    fields = read_dataset(dsb_dir, [dsb_dir / "images" / name for name in card["val_images"]])
    tallies = {"model": [0, 0, 0], "classical": [0, 0, 0]}
    for field in fields:
        channel = field.image[:, 0].astype(np.float32)
        predictions = {
            "model": model.segment(channel).labels,
            "classical": split_touching_cells(cell_foreground(channel[0], 1.0, 15), 4),
        }
        n_true = int(np.unique(field.labels[field.labels > 0]).size)
        for key, labels in predictions.items():
            tp = len(match_labels(field.labels, labels).true_ids)
            n_pred = int(np.unique(labels[labels > 0]).size)
            tallies[key][0] += tp
            tallies[key][1] += n_pred - tp
            tallies[key][2] += n_true - tp
    out: dict[str, Any] = {"n_images": len(fields), "target_ap50": 0.86}
    for key, (tp, fp, fn) in tallies.items():
        s = SegmentationScore(tp, fp, fn, 0.0, 0)
        out[key] = {"ap50": round(s.ap50, 4), "f1": round(s.f1, 4), "tp": tp, "fp": fp, "fn": fn}
    return out


HOLDOUT_TITLES = {
    "own": "own generator, standard look (the spec's ranges)",
    "evaluation": "evaluation look (alternate family; never trained or tuned on)",
}


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"


def holdout_markdown(name: str, holdout: dict[str, Any]) -> list[str]:
    """The tables of one hold-out set."""
    pipelines = holdout["pipelines"]
    lines = [
        f"## Hold-out `{name}`: {HOLDOUT_TITLES.get(name, name)}",
        "",
        "| metric | target | learned (`cytometry`) | classical (`cytometry-classical`) |",
        "| --- | --- | --- | --- |",
    ]
    learned, classical = (pipelines[p]["metrics"] for p in PIPELINES)
    for key, target in TARGETS.items():
        sign = "≤" if key == "count_mae" else "≥"
        lines.append(f"| {key} | {sign} {target} | {learned[key]:.4f} | {classical[key]:.4f} |")
    for key in ("count_bias", "count_within_sqrt_n"):
        lines.append(f"| {key} | | {learned[key]:.4f} | {classical[key]:.4f} |")
    for table, title in (("by_brightness", "body signal (ADU)"), ("by_snr", "particle SNR")):
        lines += [
            "",
            f"### By {title}",
            "",
            "| bin | images | cell F1 learned / classical | types learned / classical "
            "| count MAE learned / classical | PNP F1 learned / classical |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for mine, theirs in zip(
            pipelines["cytometry"][table], pipelines["cytometry-classical"][table], strict=True
        ):
            lines.append(
                f"| {mine['bin']} | {mine['n_images']} | {_fmt(mine['cell_f1'])} / "
                f"{_fmt(theirs['cell_f1'])} | {_fmt(mine['type_accuracy'])} / "
                f"{_fmt(theirs['type_accuracy'])} | {_fmt(mine['count_mae'])} / "
                f"{_fmt(theirs['count_mae'])} | {_fmt(mine['pnp_f1'])} / {_fmt(theirs['pnp_f1'])} |"
            )
    worse = holdout.get("learned_worse_than_classical", [])
    lines += [
        "",
        "Bins where the learned pipeline is worse than the classical one (cell F1, types): "
        + ("none" if not worse else "; ".join(worse)),
        "",
        "### Per-cell count error by true PNPs per cell",
        "",
        "| bin | cells | MAE learned | MAE classical | mean √n |",
        "| --- | --- | --- | --- | --- |",
    ]
    rows_c = {r["bin"]: r for r in pipelines["cytometry-classical"]["count_error_by_true_count"]}
    for row in pipelines["cytometry"]["count_error_by_true_count"]:
        other = rows_c.get(row["bin"], {})
        lines.append(
            f"| {row['bin']} | {row['n_cells']} | {_fmt(row['mae'])} | "
            f"{_fmt(other.get('mae'))} | {_fmt(row['mean_sqrt_true_count'])} |"
        )
    lines += ["", "Run time (this machine, shared CPU):", ""]
    for pipeline in PIPELINES:
        run = pipelines[pipeline]["run"]
        lines.append(
            f"- `{pipeline}`: {run['seconds']} s for {holdout['n_fields']} fields; "
            f"mean step s: {run['mean_step_s']}"
        )
    return lines + [""]


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown page."""
    lines = [
        "# Accuracy on fresh hold-out images",
        "",
        f"Each hold-out: {report['n_fields']} fields of {report['size_px']}² px, seed "
        f"{report['seed']} (never used in training), body 10–400 ADU, SNR 4–20. Reproduce: "
        "`make bench-accuracy` (`python -m bench.accuracy --dsb-data "
        "../shared/data/dsb2018-fluo` adds the nuclei model).",
        "",
    ]
    for name, holdout in report.get("holdouts", {}).items():
        lines += holdout_markdown(name, holdout)
    if "nuclei" in report:
        n = report["nuclei"]
        lines += [
            "",
            f"## Real nuclei (DSB2018 fluorescence, {n['n_images']} validation images)",
            "",
            "| method | AP@0.5 | F1 |",
            "| --- | --- | --- |",
            f"| nuclei-dsb2018 model | {n['model']['ap50']} | {n['model']['f1']} |",
            f"| Otsu + watershed | {n['classical']['ap50']} | {n['classical']['f1']} |",
        ]
    if "speed" in report:
        sp = report["speed"]
        lines += [
            "",
            "## Inference per field (512², 12 Z, 2 C; `python -m bench.models_speed`)",
            "",
            f"- networks: cells {sp['cell_network_s']} s ({sp['cell_network_gflop']} GFLOP), "
            f"PNP {sp['pnp_network_s']} s ({sp['pnp_network_gflop']} GFLOP) on "
            f"{sp['cpu_cores']} CPU cores ({sp.get('cpu_model', '?')}, float32 matrix product "
            f"{sp.get('sgemm_gflops', '?')} GFLOP/s: times scale with it between machines)",
            f"- with post-processing: cells {sp['cell_model_with_postprocessing_s']} s, PNP "
            f"{sp['pnp_model_with_postprocessing_s']} s, total {sp['models_total_s']} s "
            f"(target ≤ {sp['target_s']} s)",
        ]
    if "models" in report:
        lines += [
            "",
            "## Shipped models (from their card.json)",
            "",
            "Epochs and seconds are the last training run's; `--epochs 0` runs only refit what",
            "follows the network. Earlier runs are listed under `provenance` in each card.json.",
            "",
            "| model | last run: epochs | last run: s | earlier runs | validation metrics |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, card in report["models"].items():
            lines.append(
                f"| {name} | {card['epochs_run']} | {card['training_seconds']} | "
                f"{len(card.get('provenance') or ())} | {card['metrics']} |"
            )
    return "\n".join(lines) + "\n"


def attach_models(report: dict[str, Any]) -> None:
    """Add the shipped models' cards and the latest speed figures to ``report``."""
    from overnight.models.loading import models_root

    report["models"] = {}
    for name in ("cells", "pnp", "nuclei-dsb2018"):
        path = models_root() / name / "card.json"
        if path.is_file():
            card = json.loads(path.read_text())
            keys = (
                "epochs_run",
                "training_seconds",
                "metrics",
                "initial_weights",
                "provenance",
                "flops_per_field",
            )
            report["models"][name] = {k: card.get(k) for k in keys}
    speed = RESULTS / "models_speed.json"
    if speed.is_file():
        report["speed"] = json.loads(speed.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fields", type=int, default=24)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=HOLDOUT_SEED)
    parser.add_argument(
        "--dsb-data", type=Path, default=None, help="images/ + masks/ of the nuclei model"
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep hold-out data and results here"
    )
    parser.add_argument(
        "--nuclei-only",
        action="store_true",
        help="only (re)score the nuclei model into accuracy.json",
    )
    parser.add_argument(
        "--only", choices=("own", "evaluation"), default=None, help="run one hold-out set"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="report name under bench/results/ (no suffix)"
    )
    args = parser.parse_args()
    if args.nuclei_only:
        report = json.loads((RESULTS / "accuracy.json").read_text())
        report["nuclei"] = score_nuclei(args.dsb_data)
        attach_models(report)
        (RESULTS / "accuracy.json").write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / "accuracy.md").write_text(markdown(report))
        print(markdown(report))
        return 0

    from overnight.logs import configure_logging
    from overnight.synth.cytometry import write_dataset
    from overnight.synth.field import DEFAULT_RANGES
    from overnight.synth.ranges import EVALUATION_RANGES

    configure_logging("WARNING", "text")
    report: dict[str, Any] = {
        "n_fields": args.fields,
        "size_px": args.size,
        "seed": args.seed,
        "holdouts": {},
    }
    holdouts = {"own": DEFAULT_RANGES, "evaluation": EVALUATION_RANGES}
    with tempfile.TemporaryDirectory(prefix="overnight-accuracy-") as scratch:
        root = args.keep or Path(scratch)
        for holdout, ranges in holdouts.items():
            if args.only and holdout != args.only:
                continue
            data = root / holdout
            paths = write_dataset(data / "holdout", args.fields, args.seed, args.size, ranges)
            entry: dict[str, Any] = {"n_fields": args.fields, "pipelines": {}}
            for name in PIPELINES:
                run = run_pipeline(name, paths, data / "results" / name)
                entry["pipelines"][name] = {
                    "run": run,
                    **score(data / "holdout", data / "results" / name),
                }
            entry["learned_worse_than_classical"] = worse_bins(
                *(entry["pipelines"][p] for p in PIPELINES)
            )
            report["holdouts"][holdout] = entry
    if args.dsb_data is not None:
        report["nuclei"] = score_nuclei(args.dsb_data)
    attach_models(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = str(
        args.out or ("accuracy" if args.seed == HOLDOUT_SEED else f"accuracy-seed{args.seed}")
    )
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
