"""Score the shipped (or a candidate) cytometry models on the synthetic *tuning* sets.

The tuning sets are drawn like the hold-outs of :mod:`bench.accuracy` (512² fields, the own
look at the spec's ranges and the evaluation look) but from seeds 4242–4245, so models and
post-processing can be chosen on them without touching the hold-out seeds. Besides the five
metrics it splits the per-cell count error into its two sources:

- ``count_mae_cells``: the *true* particles assigned with the *predicted* labels (the error the
  cell model alone would cause with a perfect particle detector);
- ``count_mae_pnp``: the *predicted* particles (their settled multiplicities) assigned with the
  *true* labels (the particle model's error with perfect cells).

Run: ``python -m bench.tuning --models DIR --tag NAME`` (``DIR`` holds ``cells/`` and ``pnp/``;
default the shipped ``models/``). Writes ``/tmp/overnight-tuning/<tag>.json``. With
``--postprocess`` it instead scores the cell model's watershed parameters over
:data:`POSTPROCESS_GRID` on the same fields (cell F1 per look) and writes
``<tag>-postprocess.json``, best first. With ``--pnp-only`` it runs only the particle model
and counts its particles on the *true* cells (``<tag>-pnp.json``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from overnight.evaluation.cytometry import read_field_tables

SEEDS = (4242, 4243, 4244, 4245)
DIM_ADU = 40.0
#: Post-processing grid searched on the tuning sets (the shipped values are among them).
POSTPROCESS_GRID: dict[str, tuple[float, ...]] = {
    "seed_h_px": (4.5, 6.0, 9.0),
    "seed_smooth_px": (2.0,),
    "marker_threshold": (0.3, 0.45, 0.55, 0.65, 0.75, 0.85),
    "min_mean_foreground": (0.6, 0.7, 0.78),
}


def _spots(pnps: Any, with_multiplicity: bool) -> Any:
    from overnight.steps.pnp import Spots

    z, y, x = (pnps[c].to_numpy(float) for c in ("z", "y", "x"))
    mult = (
        pnps["multiplicity"].to_numpy(np.int64)
        if with_multiplicity and "multiplicity" in pnps
        else np.ones(len(z), np.int64)
    )
    return Spots(z, y, x, np.zeros(len(z)), mult)


def _count_errors(truth: Any, predicted: Any) -> tuple[float, float, int]:
    """Sums of |error| (cells-only, pnp-only) over matched cells, and how many matched."""
    from overnight.evaluation.matching import match_labels
    from overnight.steps.counting import assign_particles

    true_counts = truth.cells.set_index("cell_id")["pnp_count"]
    matches = match_labels(truth.labels, predicted.labels, 0.5)
    by_pred = assign_particles(predicted.labels, _spots(truth.pnps, False)).as_dict()
    by_true = assign_particles(truth.labels, _spots(predicted.pnps, True)).as_dict()
    cells_err = pnp_err = 0.0
    for true_id, pred_id in zip(matches.true_ids.tolist(), matches.pred_ids.tolist(), strict=True):
        n = float(true_counts.get(true_id, 0))
        cells_err += abs(by_pred.get(pred_id, 0) - n)
        pnp_err += abs(by_true.get(true_id, 0) - n)
    return cells_err, pnp_err, len(matches.true_ids)


def diagnose(truth_root: Path, results: Path) -> list[dict[str, Any]]:
    """Per field: cell F1 tallies, body signal and the two count-error sums."""
    from overnight.evaluation.cytometry import score_field

    rows = []
    for folder in sorted((truth_root / "truth").iterdir()):
        if not (results / folder.name / "labels.tif").is_file():
            continue
        truth = read_field_tables(folder)
        predicted = read_field_tables(results / folder.name)
        field = score_field(truth, predicted)
        params = json.loads((folder / "params.json").read_text())
        cells_err, pnp_err, n = _count_errors(truth, predicted)
        rows.append(
            {
                "image_id": folder.name,
                "cell_signal_adu": params.get("cell_signal_adu"),
                "snr": params.get("snr"),
                "tp": field.cell_tp,
                "fp": field.cell_fp,
                "fn": field.cell_fn,
                "count_err": field.count_abs_error_sum,
                "cells_err": cells_err,
                "pnp_err": pnp_err,
                "n_matched": n,
            }
        )
    return rows


def _f1(rows: list[dict[str, Any]]) -> float:
    tp = sum(r["tp"] for r in rows)
    bad = sum(r["fp"] + r["fn"] for r in rows)
    return 2 * tp / (2 * tp + bad) if tp + bad else float("nan")


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Cell F1 (all, dim, bright) and the count MAE with its two sources."""
    n = max(sum(r["n_matched"] for r in rows), 1)
    dim = [r for r in rows if (r["cell_signal_adu"] or 0.0) < DIM_ADU]
    bright = [r for r in rows if (r["cell_signal_adu"] or 0.0) >= DIM_ADU]
    return {
        "cell_f1": _f1(rows),
        "cell_f1_dim": _f1(dim),
        "cell_f1_bright": _f1(bright),
        "cell_errors_dim": sum(r["fp"] + r["fn"] for r in dim),
        "cell_errors_bright": sum(r["fp"] + r["fn"] for r in bright),
        "count_mae": sum(r["count_err"] for r in rows) / n,
        "count_mae_cells": sum(r["cells_err"] for r in rows) / n,
        "count_mae_pnp": sum(r["pnp_err"] for r in rows) / n,
    }


def postprocess_search(model_dir: Path, datasets: dict[str, list[Path]]) -> list[dict[str, Any]]:
    """Cell F1 per look of every :data:`POSTPROCESS_GRID` point, best (pooled) first."""
    from overnight.models.cells import CellModel, cell_input, drop_cells, watershed_cells
    from overnight.models.cells_postprocess import (
        WATERSHED_PARAMS,
        grid_points,
        pooled_f1,
    )
    from overnight.models.datasets import read_dataset

    model = CellModel.load(model_dir)
    config = model.config
    probs: dict[str, list[np.ndarray]] = {}
    truths: dict[str, list[np.ndarray]] = {}
    for look, folders in datasets.items():
        for folder in folders:
            for field in read_dataset(folder):
                channel = field.image[:, config.channel_index].astype(np.float32)
                probs.setdefault(look, []).append(
                    model.probabilities(cell_input(channel, config))[0]
                )
                truths.setdefault(look, []).append(field.labels)
    seeding = {k: v for k, v in POSTPROCESS_GRID.items() if k in WATERSHED_PARAMS}
    cuts = {k: v for k, v in POSTPROCESS_GRID.items() if k not in WATERSHED_PARAMS}
    rows = []
    for seed_point in grid_points(seeding):
        seeded = config.model_copy(update=seed_point)
        basins = {look: [watershed_cells(p, seeded) for p in ps] for look, ps in probs.items()}
        for cut_point in grid_points(cuts):
            cut = config.model_copy(update={**seed_point, **cut_point})
            labels = {
                look: [drop_cells(b, p, cut) for b, p in zip(basins[look], ps, strict=True)]
                for look, ps in probs.items()
            }
            row: dict[str, Any] = {**seed_point, **cut_point}
            for look in probs:
                row[f"f1_{look}"] = pooled_f1(truths[look], labels[look])
            row["f1_all"] = pooled_f1(
                [t for look in probs for t in truths[look]],
                [x for look in probs for x in labels[look]],
            )
            rows.append(row)
    return sorted(rows, key=lambda r: -r["f1_all"])


def pnp_only(model_dir: Path, folders: list[Path]) -> dict[str, Any]:
    """Count MAE of the particle model on true cells, and its detection F1, over ``folders``."""
    from overnight.evaluation.cytometry import MAX_AXIAL_SLICES, MAX_LATERAL_PX
    from overnight.evaluation.matching import match_points
    from overnight.models.datasets import read_dataset
    from overnight.models.pnp import PnpModel
    from overnight.steps.counting import assign_particles

    model = PnpModel.load(model_dir)
    err = n_cells = tp = n_true = n_pred = 0.0
    for folder in folders:
        for field in read_dataset(folder):
            truth = read_field_tables(folder / "truth" / field.image_id)
            spots = model.detect(field.image[:, model.config.channel_index].astype(np.float32))
            counts = assign_particles(truth.labels, spots)
            by_cell = counts.as_dict()
            for cell_id, n in truth.cells.set_index("cell_id")["pnp_count"].items():
                err += abs(by_cell.get(int(cell_id), 0) - float(n))
                n_cells += 1
            keep = counts.spot_multiplicity > 0
            pred = np.repeat(
                np.column_stack([spots.z, spots.y, spots.x])[keep],
                counts.spot_multiplicity[keep],
                axis=0,
            )
            true_points = truth.pnps[["z", "y", "x"]].to_numpy(float)
            matched, _ = match_points(true_points, pred, MAX_LATERAL_PX, MAX_AXIAL_SLICES)
            tp += len(matched)
            n_true += len(true_points)
            n_pred += len(pred)
    return {
        "count_mae_true_cells": err / max(n_cells, 1),
        "pnp_f1": 2 * tp / max(n_true + n_pred, 1),
        "n_cells": n_cells,
    }


def main() -> int:
    from bench.accuracy import run_pipeline, score

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path, default=None, help="folder with cells/ and pnp/")
    parser.add_argument("--tag", default="shipped")
    parser.add_argument("--fields", type=int, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--data", type=Path, default=Path("/tmp/overnight-tuning"))
    parser.add_argument("--looks", nargs="+", default=["own", "evaluation"])
    parser.add_argument("--postprocess", action="store_true", help="search the watershed grid")
    parser.add_argument("--pnp-only", action="store_true", help="particle model on true cells")
    args = parser.parse_args()
    if args.models is not None:
        os.environ["OVERNIGHT_MODELS_DIR"] = str(args.models.resolve())
    from overnight.logs import configure_logging
    from overnight.synth.cytometry import write_dataset
    from overnight.synth.field import DEFAULT_RANGES
    from overnight.synth.ranges import EVALUATION_RANGES

    configure_logging("WARNING", "text")
    looks = {"own": DEFAULT_RANGES, "evaluation": EVALUATION_RANGES}
    report: dict[str, Any] = {"tag": args.tag, "fields": args.fields, "seeds": args.seeds}
    if args.pnp_only:
        models = args.models or Path(__file__).parents[1] / "models"
        for look in args.looks:
            folders = [args.data / f"{look}-{seed}-{args.fields}" for seed in args.seeds]
            report[look] = pnp_only(models / "pnp", folders)
            print(look, json.dumps(report[look]))
        (args.data / f"{args.tag}-pnp.json").write_text(json.dumps(report, indent=2) + "\n")
        return 0
    if args.postprocess:
        folders = {
            look: [args.data / f"{look}-{seed}-{args.fields}" for seed in args.seeds]
            for look in args.looks
        }
        models = args.models or Path(__file__).parents[1] / "models"
        rows = postprocess_search(models / "cells", folders)
        for row in rows[:10]:
            print(json.dumps(row))
        out = args.data / f"{args.tag}-postprocess.json"
        out.write_text(json.dumps(rows, indent=2) + "\n")
        return 0
    for look in args.looks:
        all_rows: list[dict[str, Any]] = []
        metrics = []
        for seed in args.seeds:
            data = args.data / f"{look}-{seed}-{args.fields}"
            if not (data / "synth.json").is_file():
                write_dataset(data, args.fields, seed, 512, looks[look])
            paths = sorted((data / "images").glob("*.tif"))
            results = args.data / "results" / args.tag / f"{look}-{seed}"
            run_pipeline("cytometry", paths, results)
            metrics.append(score(data, results)["metrics"])
            all_rows += diagnose(data, results)
        keys = ("cell_f1", "mean_iou", "type_accuracy", "count_mae", "pnp_f1")
        report[look] = {
            "mean_of_seeds": {k: float(np.mean([m[k] for m in metrics])) for k in keys},
            "per_seed": metrics,
            "diagnosis": summarise(all_rows),
            "fields": all_rows,
        }
        print(
            look, json.dumps(report[look]["mean_of_seeds"]), json.dumps(report[look]["diagnosis"])
        )
    out = args.data / f"{args.tag}.json"
    out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
