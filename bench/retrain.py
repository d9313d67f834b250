"""``make bench-retrain``: a few corrected fields bring the models back on a shifted domain.

1. Draw a **shifted domain** outside ``TRAINING_RANGES`` (see :func:`shifted_ranges`: cells
   1.6× larger, a dim body with a rim darker than the body (inverted rim contrast), coarser
   texture, a 1.4× wider PSF and brighter particles).
2. Score the shipped models on ≥ 12 shifted hold-out fields (``shifted_before``) and on
   in-domain fields of the spec's ranges (``in_domain``).
3. For N = 3, 6, 12: analyse N other shifted fields with the shipped models, save the
   generator's truth as each field's correction through
   :func:`overnight.review.annotation.save_annotation` (the code path of the QC web), read them
   back with :func:`overnight.jobs.retrain.read_all_corrections` (what
   ``overnight train --from-reviews`` does), fine-tune the cell and the particle model from the
   shipped ones, and score them on the same hold-out (``after``) — and, for N = 6, on the
   in-domain fields too (``original_after``: does it forget?), also with one model fine-tuned
   and the other shipped (``original_after_one_model``: which one forgets).

Writes ``bench/results/retrain.json`` and ``retrain.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
SHIFT_SEED = 160_2026  # never used for any other training, tuning or hold-out
IN_DOMAIN_SEED = 161_2026
POOL_SEED = 162_2026
#: (shifted hold-out, in-domain hold-out, corrected pool) seeds of the benchmark's draw.
SEEDS = (SHIFT_SEED, IN_DOMAIN_SEED, POOL_SEED)
SIZE = 384
N_HOLDOUT = 12
N_CORRECTED = (3, 6, 12)
#: Fine-tuning of the benchmark (2 CPU cores): a share of synthetic fields keeps the domain.
SYNTHETIC_SHARE = 0.5
EPOCHS = 6
#: Steps per epoch of each model (the library's FINE_TUNE_STEPS: the cell model's 40 cut the
#: merges of large touching cells on the tuning draw, seeds 7301-7303).
STEPS = {"cells": 40, "pnp": 20}
METRICS = ("cell_f1", "mean_iou", "count_mae")


def shifted_ranges() -> Any:
    """The shifted domain: every changed range lies outside ``TRAINING_RANGES``.

    cells 1.6× the spec's diameters (lymphocytes 48-72 px vs ≤ 47 trained, monocytes
    88-120 px vs ≤ 78; 4-10 cells per 512² as they are larger); rim contrast 0.5-0.8 (a rim
    darker than the body; trained 1.2-3.0); texture strength 0.4-0.5 (trained ≤ 0.35) at
    grain 6-8 px (trained ≤ 6); cell body signal 15-60 ADU (dim; inside the trained range);
    PNP σ 2.0-2.5 px and 2.0-2.5 slices (trained ≤ 1.8); particle SNR 30-40 (trained ≤ 25).
    """
    from overnight.synth.ranges import CytometryRanges

    spec = CytometryRanges()
    types = tuple(
        t.model_copy(update={"diameter_px": (t.diameter_px[0] * 1.6, t.diameter_px[1] * 1.6)})
        for t in spec.cell_types
    )
    return spec.model_copy(
        update={
            "cell_types": types,
            "cells_per_512": (4, 10),
            "rim_contrast": (0.5, 0.8),
            "texture_strength": (0.4, 0.5),
            "texture_scale_px": (6.0, 8.0),
            "cell_signal_adu": (15.0, 60.0),
            "sigma_xy_px": (2.0, 2.5),
            "sigma_z_slices": (2.0, 2.5),
            "snr": (30.0, 40.0),
        }
    )


def analyse(paths: list[Path], out: Path, models: Path | None = None) -> None:
    """Run the learned pipeline over ``paths`` into ``out``.

    ``models`` holds ``cells/`` and ``pnp/`` model folders (None: the shipped models).
    """
    from overnight.pipeline.batch import BatchOptions, ImageAnalyser

    overrides: dict[str, dict[str, Any]] = {}
    if models is not None:
        for step in ("locate_cells_ae", "cell_boundaries_ae", "classify_cells_ae"):
            overrides[step] = {"model": str(models / "cells")}
        overrides["detect_pnps_unet"] = {"model": str(models / "pnp")}
    analyser = ImageAnalyser(
        BatchOptions(
            pipeline="cytometry",
            out_url=str(out),
            step_overrides=overrides,
            dataset_dir=paths[0].parent,
        )
    )
    for path in paths:
        outcome = analyser.analyse(path)
        if outcome.status == "failed":
            raise RuntimeError(f"{path}: {outcome.reason}")


def score(truth: Path, results: Path) -> dict[str, float]:
    """Cell F1, mean IoU and per-cell count MAE of ``results`` against ``truth``."""
    from overnight.evaluation import score_dataset

    scored = score_dataset(truth, results)
    return {name: round(float(getattr(scored, name)), 4) for name in METRICS}


def field_tallies(truth: Path, results: Path) -> np.ndarray:
    """Per field (rows): true cells, predicted cells, matched cells, IoU sum, count error sum."""
    from overnight.evaluation import score_dataset

    scored = score_dataset(truth, results)
    return np.array(
        [
            [s.n_true_cells, s.n_pred_cells, s.cell_tp, s.iou_sum, s.count_abs_error_sum]
            for _, s in scored.fields
        ],
        np.float64,
    )


def _metrics(tallies: np.ndarray) -> np.ndarray:
    """Cell F1, mean IoU and count MAE (last axis) of summed tallies (``(..., 5)``)."""
    n_true, n_pred, tp, iou_sum, error_sum = np.moveaxis(tallies, -1, 0)
    matched = np.maximum(tp, 1)
    return np.stack(
        [2 * tp / np.maximum(n_true + n_pred, 1), iou_sum / matched, error_sum / matched], -1
    )


def paired_noise(
    before: np.ndarray, after: np.ndarray, n: int = 4000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Each metric's change ``after − before`` on the same fields, with its 95 % interval.

    The interval is a paired bootstrap: the fields (rows of :func:`field_tallies`) are drawn
    with replacement ``n`` times and both runs are scored on the same draw. A change whose
    interval excludes 0 is more than the hold-out's noise.
    """
    picks = np.random.default_rng(seed).integers(0, len(before), (n, len(before)))
    changes = _metrics(after[picks].sum(1)) - _metrics(before[picks].sum(1))
    change = _metrics(after.sum(0)) - _metrics(before.sum(0))
    low, high = np.percentile(changes, [2.5, 97.5], axis=0)
    return {
        name: {"change": round(float(c), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}
        for name, c, lo, hi in zip(METRICS, change, low, high, strict=True)
    }


def correct(dataset: Path, results: Path) -> None:
    """Save each field's generator truth as its correction, through ``save_annotation``."""
    from overnight.evaluation.cytometry import particle_positions, read_field_tables
    from overnight.results.layout import DatasetResults
    from overnight.results.record import ImageResult
    from overnight.review.annotation import Annotation, model_versions_of, save_annotation
    from overnight.storage import open_store

    store = open_store(str(results))
    layout = DatasetResults(store)
    for truth_dir in sorted((dataset / "truth").iterdir()):
        image_id = truth_dir.name
        truth = read_field_tables(truth_dir)
        points = particle_positions(truth.pnps)
        spots = np.column_stack([points[:, 1], points[:, 2], np.ones(len(points))])
        result = ImageResult.read(store, layout.image_prefix(image_id))
        types = dict(zip(truth.cells["cell_id"].astype(int), truth.cells["cell_type"], strict=True))
        present = set(np.unique(truth.labels[truth.labels > 0]).tolist())
        annotation = Annotation(
            labels=truth.labels.astype(np.uint32),
            spots=spots,
            cell_types={k: str(v) for k, v in types.items() if k in present},
            author="bench-retrain",
            created_at="",
            version=0,
            parent_version=None,
            model_versions=model_versions_of(result.versions),
            note="generator truth (bench/retrain.py)",
        )
        save_annotation(store, layout.image_prefix(image_id), annotation, expected_version=None)


def fine_tune_from_reviews(results: Path, models: Path) -> float:
    """``overnight train cells|pnp --from-reviews RESULTS --init <shipped>``: seconds taken.

    Both models learn from the same corrections (labels for the cell model, spots for the
    particle model), each with its own fine-tuning run.
    """
    from overnight.jobs.retrain import read_all_corrections
    from overnight.models.loading import resolve_model_dir
    from overnight.models.retrain import FineTuneOptions, fine_tune

    start = time.perf_counter()
    fields = read_all_corrections([str(results)])
    for kind in ("cells", "pnp"):
        options = FineTuneOptions(
            epochs=EPOCHS, steps=STEPS[kind], synthetic_share=SYNTHETIC_SHARE, verbose=0
        )
        init = resolve_model_dir("", kind)
        fine_tune(kind, fields, init, models / kind, options, f"{kind}@default")
    return round(time.perf_counter() - start, 1)


def refit_params(model_dir: Path) -> dict[str, float]:
    """The post-processing and input scale the fine-tune fitted (the cell model's config)."""
    from overnight.models.cells_postprocess import POSTPROCESS_GRID, SEED_GRID

    config = json.loads((model_dir / "config.json").read_text())
    return {name: config[name] for name in {**SEED_GRID, **POSTPROCESS_GRID, "input_scale": 1}}


def at_shipped_scale(models: Path, out: Path) -> Path:
    """A copy of fine-tuned ``models`` whose cell model reads images at the shipped scale.

    The input scale belongs to the lab's images (their cells' size), not to the network: the
    original domain is read at the scale the shipped model reads it.
    """
    from overnight.models.config import CellModelConfig, load_config, save_config
    from overnight.models.loading import resolve_model_dir

    shutil.copytree(models, out)
    shipped, tuned = load_config(resolve_model_dir("", "cells")), load_config(out / "cells")
    assert isinstance(shipped, CellModelConfig) and isinstance(tuned, CellModelConfig)
    save_config(tuned.model_copy(update={"input_scale": shipped.input_scale}), out / "cells")
    return out


def one_model_at_a_time(root: Path, in_domain: list[Path], models: Path) -> dict[str, Any]:
    """The in-domain hold-out with one fine-tuned model and the other one shipped.

    Which of the two models a loss on the original domain comes from.
    """
    from overnight.models.loading import resolve_model_dir

    found = {}
    for tuned in ("cells", "pnp"):
        mixed = root / "models" / f"only-{tuned}"
        shipped = "pnp" if tuned == "cells" else "cells"
        shutil.copytree(models / tuned, mixed / tuned)
        shutil.copytree(resolve_model_dir("", shipped), mixed / shipped)
        analyse(in_domain, root / "results" / f"in-domain-only-{tuned}", mixed)
        found[f"{tuned} fine-tuned"] = score(
            root / "in-domain", root / "results" / f"in-domain-only-{tuned}"
        )
    return found


def run(
    root: Path, n_holdout: int, corrected: tuple[int, ...], seeds: tuple[int, int, int] = SEEDS
) -> dict[str, Any]:
    """The whole benchmark in ``root``; the report. ``seeds``: as :data:`SEEDS`."""
    shift_seed, in_domain_seed, pool_seed = seeds
    from overnight.synth.cytometry import write_dataset
    from overnight.synth.ranges import CytometryRanges

    shifted = shifted_ranges()
    holdout = write_dataset(root / "shifted-holdout", n_holdout, shift_seed, SIZE, shifted)
    in_domain = write_dataset(
        root / "in-domain", n_holdout, in_domain_seed, SIZE, CytometryRanges()
    )
    analyse(in_domain, root / "results" / "in-domain-shipped")
    analyse(holdout, root / "results" / "shifted-shipped")
    report: dict[str, Any] = {
        "in_domain": score(root / "in-domain", root / "results" / "in-domain-shipped"),
        "shifted_before": score(root / "shifted-holdout", root / "results" / "shifted-shipped"),
        "after": {},
        "original_after": {},
        "postprocess_refit": {},
    }
    print("before:", report, flush=True)
    for n in corrected:
        pool = write_dataset(root / f"pool-{n}", n, pool_seed, SIZE, shifted)
        reviewed = root / "results" / f"pool-{n}"
        analyse(pool, reviewed)
        correct(root / f"pool-{n}", reviewed)
        models = root / "models" / f"reviewed-{n}"
        seconds = fine_tune_from_reviews(reviewed, models)
        analyse(holdout, root / "results" / f"shifted-after-{n}", models)
        after = score(root / "shifted-holdout", root / "results" / f"shifted-after-{n}")
        report["after"][str(n)] = {**after, "train_s": seconds}
        report["postprocess_refit"][str(n)] = refit_params(models / "cells")
        if n == 6:
            models = at_shipped_scale(models, root / "models" / "reviewed-6-shipped-scale")
            analyse(in_domain, root / "results" / "in-domain-after-6", models)
            report["original_after"]["6"] = score(
                root / "in-domain", root / "results" / "in-domain-after-6"
            )
            report["original_after_one_model"] = one_model_at_a_time(root, in_domain, models)
            report["original_noise"] = {
                "6": paired_noise(
                    field_tallies(root / "in-domain", root / "results" / "in-domain-shipped"),
                    field_tallies(root / "in-domain", root / "results" / "in-domain-after-6"),
                )
            }
        print(n, report["after"][str(n)], flush=True)
    return report


def _shift_text() -> str:
    """The shifted domain's parameters in words (from :func:`shifted_ranges`' docstring)."""
    text = (shifted_ranges.__doc__ or "").split("\n\n", 1)[-1]
    return " ".join(text.split())


def markdown(report: dict[str, Any], setup: dict[str, Any]) -> str:
    """The report as a page."""
    seeds = setup.get("seeds", SEEDS)
    rows = [("in-domain, shipped", report["in_domain"], None)]
    rows.append(("shifted, shipped", report["shifted_before"], None))
    for n, m in report["after"].items():
        rows.append((f"shifted, fine-tuned on {n} corrected", m, m.get("train_s")))
    for n, m in report["original_after"].items():
        rows.append((f"in-domain, fine-tuned on {n} corrected", m, None))
    for name, m in report.get("original_after_one_model", {}).items():
        rows.append((f"in-domain, 6 corrected, only the {name}", m, None))
    lines = [
        "# Retraining from corrections on a shifted domain",
        "",
        f"Shifted domain (outside TRAINING_RANGES): {_shift_text()}",
        "",
        f"Fields {SIZE}² px; hold-outs: {setup['n_holdout']} shifted fields (seed {seeds[0]}) "
        f"and {setup['n_holdout']} in-domain fields of the spec's ranges (seed {seeds[1]}); "
        f"corrected fields from seed {seeds[2]}, saved with save_annotation. Fine-tune: the "
        f"cell and the particle model, each from the shipped one, {EPOCHS} epochs × "
        f"{STEPS['cells']} (cells) / {STEPS['pnp']} (pnp) steps at most, "
        f"{int(SYNTHETIC_SHARE * 100)} % synthetic fields of TRAINING_RANGES in "
        "training, 20 % of the corrected fields held out for validation with as many fresh "
        "synthetic fields (the particle model's gain is fitted there, its multiplicity model "
        f"only from ≥ {setup['min_refit_basins']} basins, else the shipped one stays; the "
        "cell model's input scale — the factor images are resized by before its network — is "
        "fitted by cell F1 on all corrected fields (from ≥ 20 true cells, a gain of ≥ 0.02 "
        "over the shipped 1.0), the corrected fields are resized by it for training, and the "
        "in-domain rows read their images at the shipped scale 1.0; the cell model's "
        "watershed seeding — interior threshold, seed height and smoothing — is "
        "refitted by cell F1 on all corrected fields, from ≥ 20 true cells, where it does not "
        "lose more than 0.01 F1 on 4 fresh synthetic fields of TRAINING_RANGES); L2-SP toward "
        "the shipped weights, "
        f"{_l2_sp_text(setup['l2_sp'])}; train (s) is both runs together.",
        "",
        "| model, data | cell F1 | mean IoU | count MAE / cell | train (s) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, m, seconds in rows:
        lines.append(
            f"| {name} | {m['cell_f1']:.3f} | {m['mean_iou']:.3f} | {m['count_mae']:.3f} | "
            f"{'' if seconds is None else seconds} |"
        )
    refits = report.get("postprocess_refit", {})
    if refits:
        lines += [
            "",
            "Input scale and post-processing after the refit (shipped: input_scale=1, "
            "marker_threshold=0.65, seed_h_px=6, seed_smooth_px=2, min_mean_foreground=0.78, "
            "min_cell_px=60):",
        ]
        lines += [
            f"- {n} corrected: " + ", ".join(f"{k}={v:g}" for k, v in params.items())
            for n, params in refits.items()
        ]
    lines += ["", *target_lines(report), "", f"Machine: {setup['machine']}; {setup['note']}", ""]
    return "\n".join(lines)


def _l2_sp_text(l2_sp: dict[str, float]) -> str:
    """The fine-tune's L2-SP weights in words."""
    return ", ".join(
        f"{weight:g} × Σ(w − w₀)² for the {kind} model" for kind, weight in l2_sp.items()
    )


def target_lines(report: dict[str, Any]) -> list[str]:
    """The issue's target for 6 corrected fields, checked: within 1.5× of in-domain."""
    base, after = report["in_domain"], report["after"].get("6")
    if after is None:
        return []
    mae_ok = after["count_mae"] <= 1.5 * base["count_mae"]
    f1_ok = after["cell_f1"] >= base["cell_f1"] / 1.5
    miss_ok = 1 - after["cell_f1"] <= 1.5 * (1 - base["cell_f1"])
    lines = [
        "Target with 6 corrected fields (within 1.5× of in-domain):",
        f"- count MAE {after['count_mae']:.3f} vs ≤ {1.5 * base['count_mae']:.3f}: "
        f"{'met' if mae_ok else 'not met'}",
        f"- cell F1 {after['cell_f1']:.3f} vs ≥ {base['cell_f1'] / 1.5:.3f}: "
        f"{'met' if f1_ok else 'not met'}; read strictly as the miss rate 1 − F1 "
        f"({1 - after['cell_f1']:.3f} vs ≤ {1.5 * (1 - base['cell_f1']):.3f}): "
        f"{'met' if miss_ok else 'not met'}",
    ]
    original = report["original_after"].get("6")
    if original is not None:
        lines.append(
            f"- original (in-domain) hold-out after the fine-tune: cell F1 "
            f"{original['cell_f1']:.3f} (was {base['cell_f1']:.3f}), mean IoU "
            f"{original['mean_iou']:.3f} (was {base['mean_iou']:.3f}), count MAE "
            f"{original['count_mae']:.3f} (was {base['count_mae']:.3f})"
        )
    noise = report.get("original_noise", {}).get("6")
    if noise is not None:
        worse = {"cell_f1": -1, "mean_iou": -1, "count_mae": 1}  # the sign of a loss
        parts = []
        for name, sign in worse.items():
            change, (low, high) = noise[name]["change"], noise[name]["ci95"]
            beyond = (low > 0) if sign > 0 else (high < 0)
            parts.append(
                f"{name} {change:+.3f} [{low:+.3f}, {high:+.3f}]"
                + (" a loss beyond noise" if beyond else "")
            )
        lost = any("beyond" in part for part in parts)
        lines.append(
            "- its change against the shipped models, with the 95 % interval of a paired "
            "bootstrap over the hold-out fields: "
            + "; ".join(parts)
            + ": "
            + ("not met (a loss of more than its noise)" if lost else "met (no loss beyond noise)")
        )
    return lines


def machine() -> str:
    """The CPU model and how many cores this process may use."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [
        line.split(":", 1)[1].strip()
        for line in (cpuinfo.read_text().splitlines() if cpuinfo.is_file() else [])
        if line.startswith("model name")
    ]
    return f"{names[0] if names else platform.machine()}, {len(os.sched_getaffinity(0))} cores"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--holdout", type=int, default=N_HOLDOUT)
    parser.add_argument("--corrected", type=int, nargs="+", default=list(N_CORRECTED))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs=3,
        default=list(SEEDS),
        metavar=("SHIFTED", "IN_DOMAIN", "POOL"),
        help="another draw: seeds of the shifted hold-out, the in-domain hold-out and the "
        "corrected pool",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-retrain-") as scratch:
        report = run(Path(scratch), args.holdout, tuple(args.corrected), tuple(args.seeds))
    from overnight.models.retrain import FINE_TUNE_L2_SP, MIN_REFIT_BASINS

    setup = {
        "n_holdout": args.holdout,
        "seeds": list(args.seeds),
        "l2_sp": dict(FINE_TUNE_L2_SP),
        "min_refit_basins": MIN_REFIT_BASINS,
        "machine": machine(),
        "note": f"whole run {time.perf_counter() - start:.0f} s on a shared machine",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "retrain.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "retrain.md").write_text(markdown(report, setup))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
