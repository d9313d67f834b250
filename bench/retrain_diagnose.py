"""Why cell F1 stays low after a 6-field fine-tune (issue 16): error kinds, post-processing grid.

Fine-tunes the cell model on the 6 corrected fields of ``bench.retrain`` (same seeds, schedule
and synthetic share; the generator's truth as the corrections) unless ``--model`` names one
already trained, then on the 12 shifted hold-out fields:

1. sorts its errors into missed cells, false cells, splits and merges;
2. scores every point of :data:`overnight.models.cells_postprocess.POSTPROCESS_GRID` on the
   hold-out itself (an oracle: how much the post-processing *could* give) and on the corrected
   fields (what a refit from them can see);
3. measures ``p(boundary)`` along the shared border of every touching pair of true cells.

``nice -n 10 .venv/bin/python -m bench.retrain_diagnose [--model DIR]``: prints JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.retrain import (
    EPOCHS,
    POOL_SEED,
    SHIFT_SEED,
    SIZE,
    STEPS,
    SYNTHETIC_SHARE,
    shifted_ranges,
)


def error_kinds(truth: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    """Unmatched (IoU < 0.5) true and predicted cells of one field, by kind.

    A true cell is *split* when ≥ 2 predicted cells each cover > 20 % of it, *merged* when
    one predicted cell covers > 20 % of it and of another true cell, *missed* when none covers
    > 20 % of it. A predicted cell is a *false cell* when < 50 % of it lies on true cells, a
    *fragment* when > 50 % lies in one true cell, a *merge* when it covers > 20 % of two.
    """
    from overnight.evaluation.matching import match_labels

    matches = match_labels(truth, pred)
    kinds = dict.fromkeys(("missed", "split", "merged", "other_fn"), 0)
    kinds.update(dict.fromkeys(("false_cell", "fragment", "merge", "other_fp"), 0))
    for t in set(np.unique(truth[truth > 0]).tolist()) - set(matches.true_ids.tolist()):
        ids, counts = np.unique(pred[(truth == t) & (pred > 0)], return_counts=True)
        covering = ids[counts > 0.2 * (truth == t).sum()]
        if len(covering) >= 2:
            kinds["split"] += 1
        elif not len(covering):
            kinds["missed"] += 1
        elif _covers_two(truth, pred == covering[0]):
            kinds["merged"] += 1
        else:
            kinds["other_fn"] += 1
    for p in set(np.unique(pred[pred > 0]).tolist()) - set(matches.pred_ids.tolist()):
        inside = truth[pred == p]
        ids, counts = np.unique(inside[inside > 0], return_counts=True)
        if counts.sum() < 0.5 * inside.size:
            kinds["false_cell"] += 1
        elif _covers_two(truth, pred == p):
            kinds["merge"] += 1
        elif counts.max() > 0.5 * inside.size:
            kinds["fragment"] += 1
        else:
            kinds["other_fp"] += 1
    return kinds


def _covers_two(truth: np.ndarray, mask: np.ndarray) -> bool:
    """Whether ``mask`` covers > 20 % of at least two true cells."""
    ids, counts = np.unique(truth[mask & (truth > 0)], return_counts=True)
    areas = np.bincount(truth.ravel())
    return int((counts > 0.2 * areas[ids]).sum()) >= 2


def border_boundary(truth: np.ndarray, probs: np.ndarray, pred: np.ndarray) -> list[dict[str, Any]]:
    """Touching true pairs: shared border (px), mean p(boundary) there, merged or not."""
    from scipy import ndimage as ndi

    found = []
    for i in np.unique(truth[truth > 0]):
        ring = ndi.binary_dilation(truth == i, iterations=2) & (truth != i) & (truth > 0)
        for j in np.unique(truth[ring]):
            if j <= i:
                continue
            border = (ndi.binary_dilation(truth == j, iterations=2) & (truth == i)) | (
                ring & (truth == j)
            )
            a, b = (np.bincount(pred[truth == k]).argmax() for k in (i, j))
            found.append(
                {
                    "border_px": int(border.sum()),
                    "p_boundary": round(float(probs[..., 2][border].mean()), 3),
                    "merged": bool(a == b and a > 0),
                }
            )
    return found


def _fields(seed: int, n: int) -> list[Any]:
    from overnight.models.datasets import TrainingField
    from overnight.synth.cytometry import draw_field

    drawn = [
        draw_field(np.random.default_rng(c), (SIZE, SIZE), shifted_ranges())
        for c in np.random.SeedSequence(seed).spawn(n)
    ]
    return [
        TrainingField(f"{seed}-{i}", d.image, d.labels, d.cells, d.pnps, d.params.pixel_size_um)
        for i, d in enumerate(drawn)
    ]


def _grid_f1(config: Any, probs: list[np.ndarray], truths: list[np.ndarray]) -> list[dict]:
    from overnight.models.cells import drop_cells, watershed_cells
    from overnight.models.cells_postprocess import (
        POSTPROCESS_GRID,
        WATERSHED_PARAMS,
        grid_points,
        pooled_f1,
    )

    seeding = {k: v for k, v in POSTPROCESS_GRID.items() if k in WATERSHED_PARAMS}
    cuts = {k: v for k, v in POSTPROCESS_GRID.items() if k not in WATERSHED_PARAMS}
    rows = []
    for seed_point in grid_points(seeding):
        basins = [watershed_cells(p, config.model_copy(update=seed_point)) for p in probs]
        for cut_point in grid_points(cuts):
            cut = config.model_copy(update={**seed_point, **cut_point})
            labels = [drop_cells(b, p, cut) for b, p in zip(basins, probs, strict=True)]
            rows.append({**seed_point, **cut_point, "f1": round(pooled_f1(truths, labels), 4)})
    return rows


def diagnose(model_dir: Path | None) -> dict[str, Any]:
    """The diagnosis of the 6-field model (trained here when ``model_dir`` is None)."""
    from overnight.models.cells import CellModel, cell_input, instance_labels
    from overnight.models.corrections import CorrectedField, ReviewSource
    from overnight.models.loading import resolve_model_dir
    from overnight.models.retrain import FineTuneOptions, fine_tune

    pool = _fields(POOL_SEED, 6)
    holdout = _fields(SHIFT_SEED, 12)
    if model_dir is None:
        model_dir = Path(tempfile.mkdtemp(prefix="retrain-diagnose-")) / "cells"
        corrected = [
            CorrectedField(f, ReviewSource("bench", f.image_id, 1, "truth", ""), str(i))
            for i, f in enumerate(pool)
        ]
        options = FineTuneOptions(
            EPOCHS, STEPS["cells"], synthetic_share=SYNTHETIC_SHARE, verbose=0
        )
        fine_tune("cells", corrected, resolve_model_dir("", "cells"), model_dir, options)
    model = CellModel.load(model_dir)
    config = model.config

    def probabilities(field: Any) -> np.ndarray:
        channel = field.image[:, config.channel_index].astype(np.float32)
        return model.probabilities(cell_input(channel, config))[0]

    hold_probs = [probabilities(f) for f in holdout]
    pool_probs = [probabilities(f) for f in pool]
    preds = [instance_labels(p, config) for p in hold_probs]
    kinds: dict[str, int] = {}
    borders = []
    for field, probs, pred in zip(holdout, hold_probs, preds, strict=True):
        for name, count in error_kinds(field.labels, pred).items():
            kinds[name] = kinds.get(name, 0) + count
        borders += border_boundary(field.labels, probs, pred)
    on_hold = _grid_f1(config, hold_probs, [f.labels for f in holdout])
    on_pool = _grid_f1(config, pool_probs, [f.labels for f in pool])
    return {
        "model": str(model_dir),
        "holdout_true_cells": int(sum(len(np.unique(f.labels[f.labels > 0])) for f in holdout)),
        "holdout_errors": kinds,
        "holdout_f1_oracle_best": max(on_hold, key=lambda r: r["f1"]),
        "corrected_f1_best": max(r["f1"] for r in on_pool),
        "corrected_f1_at_model_config": [
            r["f1"] for r in on_pool if all(r[k] == getattr(config, k) for k in r if k != "f1")
        ],
        "touching_pairs": borders,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=None, help="a 6-field cell model folder")
    print(json.dumps(diagnose(parser.parse_args().model), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
