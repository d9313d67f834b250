"""Fine-tuning a model on reviewers' corrections (plus some synthetic fields so it keeps the rest).

The corrected fields arrive as :class:`CorrectedField` (image, corrected labels and spots, cell
types, and where the correction came from); :func:`fine_tune` splits them into training and
validation fields (validation only ever holds corrected fields), adds ``synthetic_share`` of
freshly drawn synthetic fields to the training side, trains from the initial model with the
shared loop (:func:`overnight.models.cells_training.train_cells`,
:func:`overnight.models.pnp_training.train_pnp`) and writes the model with a card whose
provenance names every dataset, image, reviewer and annotation version, plus ``reviews.json``
with the same facts as data.

Reading the corrections from storage is the job of :mod:`overnight.jobs.retrain` (this layer
knows nothing of results or annotations).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from overnight.errors import NoImagesError
from overnight.models.card import CARD_FILE, ModelCard, save_card
from overnight.models.config import CellModelConfig, PnpModelConfig, load_config, save_config
from overnight.models.corrections import CorrectedField, ReviewSource
from overnight.models.datasets import TrainingField, TrainingSplit, split_paths
from overnight.models.registry import WEIGHTS_FILE

if TYPE_CHECKING:  # the `analysis` extra (scipy), imported where a fine-tune runs
    from overnight.models.cells_scale import ScaleFit

logger = logging.getLogger(__name__)

REVIEWS_FILE = "reviews.json"
ModelKind = Literal["cells", "pnp"]
#: Fine-tuning schedule: few short epochs at a third of the from-scratch learning rate, so a
#: handful of fields move the model without wiping what it knew (2 CPU cores: ~1-4 min).
FINE_TUNE_EPOCHS = 8
#: Steps per epoch of each model's fine-tune. The cell model's 40 (was 20) were chosen on the
#: tuning draw (seeds 7301-7303, 6 corrected fields, 6 epochs): 24 shifted hold-out fields'
#: cell F1 0.906 → 0.925 (merges of touching large cells 7 → 1; 12 fields 0.891 → 0.968),
#: in-domain 0.990 → 0.997.
FINE_TUNE_STEPS: dict[str, int] = {"cells": 40, "pnp": 20}
FINE_TUNE_LEARNING_RATE = 3e-4
FINE_TUNE_PATIENCE = 4
#: L2-SP weight (:func:`overnight.models.training.anchor_weights`) of each model's fine-tune:
#: the loss adds this × the summed squared distance of the weights from the initial model's.
#: Chosen on a tuning draw (6 corrected fields of bench.retrain's shifted domain, seed 7301;
#: 12 shifted hold-out fields, seed 7302; 12 in-domain fields, seed 7303; never the benchmark's
#: seeds), 6 × 20 steps, 50 % synthetic, by the in-domain change against the shipped models
#: and its paired-bootstrap 95 % interval over the fields (bench.retrain.paired_noise). Cells
#: 0.005: count MAE −0.05 [−0.51, 0.22] / cell, F1 −0.007 [−0.025, 0.006], weights moving 0.43
#: in Σ(w − w₀)² instead of 1.69 (free: −0.02 and the same F1); 0.02: count MAE +0.20
#: [+0.04, +0.37], more than noise. Shifted gains alike (F1 +0.08, count MAE 8.0 → 1.33).
#: The particle model's 0.01 raised shifted count MAE 1.36 → 1.80 / cell: it stays free.
FINE_TUNE_L2_SP: dict[str, float] = {"cells": 0.005, "pnp": 0.0}
#: Fewest basins on the validation fields for the particle model's multiplicity model to be
#: refitted (the shipped one learned from 24 fields); below it the initial one stays. On the
#: tuning draw the refit on 2 validation fields (347 basins) raised in-domain count MAE
#: 1.51 → 2.28 / cell (shipped cell model; keeping it: 1.65, the shipped gain too: 1.74), while
#: keeping it still took the shifted fields' count MAE 8.0 → 1.33 (fine-tuned cell model).
MIN_REFIT_BASINS = 1000
#: Fresh synthetic fields of the training ranges that guard the cell model's seeding refit
#: (its F1 there may not fall by more than ``REFERENCE_TOLERANCE``).
REFIT_REFERENCE_FIELDS = 4
#: Files of the initial model kept when the fine-tune does not refit them.
_CARRIED = {"cells": ("classifier.json",), "pnp": ("multiplicity.json",)}


def synthetic_fields(n: int, size_yx: tuple[int, int], seed: int) -> list[TrainingField]:
    """``n`` fresh synthetic fields of the training ranges (what the shipped models learned)."""
    from overnight.synth.cytometry import draw_field
    from overnight.synth.ranges import TRAINING_RANGES

    found = []
    for index, child in enumerate(np.random.SeedSequence(seed).spawn(n)):
        drawn = draw_field(np.random.default_rng(child), size_yx, TRAINING_RANGES)
        found.append(
            TrainingField(
                f"synthetic-{index:03d}",
                drawn.image,
                drawn.labels,
                drawn.cells,
                drawn.pnps,
                drawn.params.pixel_size_um,
            )
        )
    return found


def n_synthetic(n_corrected_train: int, share: float) -> int:
    """Synthetic fields to add so they are ``share`` of the training fields.

    >>> n_synthetic(4, 0.5), n_synthetic(4, 0.0), n_synthetic(3, 0.25)
    (4, 0, 1)
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"synthetic share {share} should be in [0, 1)")
    return int(round(n_corrected_train * share / (1.0 - share)))


def review_split(
    fields: list[CorrectedField],
    val_fraction: float,
    seed: int,
    synthetic: list[TrainingField] | None = None,
    synthetic_val: list[TrainingField] | None = None,
) -> tuple[TrainingSplit, list[CorrectedField], list[CorrectedField]]:
    """The training split of corrected ``fields``, and which of them train and validate.

    Corrected fields are split by ``seed`` (at least one each side when there are two or
    more); ``synthetic`` fields join the training side, ``synthetic_val`` the validation
    side (so early stopping and the particle model's calibration also hold on the domain the
    model came from).
    """
    if not fields:
        raise NoImagesError("no corrected images to learn from; correct some in the QC web first")
    names = [Path(f"{i:05d}") for i in range(len(fields))]
    train_names, val_names = split_paths(names, val_fraction, seed)
    train = [fields[int(p.name)] for p in train_names]
    val = [fields[int(p.name)] for p in val_names]
    split = TrainingSplit(
        data_dir=Path("reviews"),
        paths=[],
        train=[f.field for f in train] + list(synthetic or []),
        val=[f.field for f in val] + list(synthetic_val or []),
        val_paths=[Path(f.source.image_id) for f in val]
        + [Path(f.image_id) for f in synthetic_val or []],
    )
    return split, train, val


def fine_tune_config(
    config: CellModelConfig | PnpModelConfig, epochs: int | None, steps: int | None
) -> CellModelConfig | PnpModelConfig:
    """``config`` with the fine-tuning schedule (``epochs``/``steps`` override it)."""
    train = config.train.model_copy(
        update={
            "epochs": epochs or FINE_TUNE_EPOCHS,  # 0 reaches the loop as its own argument
            "steps_per_epoch": steps or FINE_TUNE_STEPS[config.kind],
            "learning_rate": FINE_TUNE_LEARNING_RATE,
            "patience": FINE_TUNE_PATIENCE,
            "l2_sp": FINE_TUNE_L2_SP[config.kind],
        }
    )
    return config.model_copy(update={"train": train})


@dataclass(frozen=True)
class FineTuneOptions:
    """How a fine-tune runs: schedule, validation share, synthetic share and seed."""

    epochs: int | None = None
    steps: int | None = None
    val_fraction: float = 0.2
    synthetic_share: float = 0.0
    seed: int = 20261207
    verbose: int = 2
    refit_postprocessing: bool = True
    fit_scale: bool = True


def fine_tune(
    kind: ModelKind,
    fields: list[CorrectedField],
    init_dir: Path,
    out_dir: Path,
    options: FineTuneOptions = FineTuneOptions(),
    init_reference: str | None = None,
) -> ModelCard:
    """Fine-tune the model in ``init_dir`` on corrected ``fields``; write it to ``out_dir``.

    Returns the new model's card (also saved, with ``reviews.json``, in ``out_dir``).
    """
    from overnight.models.cells_scale import rescale_field
    from overnight.models.cells_training import train_cells
    from overnight.models.pnp_training import train_pnp

    config = fine_tune_config(load_config(init_dir), options.epochs, options.steps)
    as_reviewed = [f.field for f in fields]
    scale_fit = None
    if isinstance(config, CellModelConfig) and options.fit_scale:
        fields, scale_fit = _at_fitted_scale(init_dir, fields)
        config = config.model_copy(update={"input_scale": 1.0})  # the fields now have it
    original_of = {id(f): reviewed for f, reviewed in zip(fields, as_reviewed, strict=True)}
    _, corrected_train, corrected_val = review_split(fields, options.val_fraction, options.seed)
    n_train = n_synthetic(len(corrected_train), options.synthetic_share)
    n_val = len(corrected_val) if n_train else 0  # as many synthetic as corrected
    shape_yx = fields[0].field.labels.shape
    drawn = synthetic_fields(n_train + n_val, (int(shape_yx[0]), int(shape_yx[1])), options.seed)
    synthetic = drawn[:n_train]
    split, train, val = review_split(
        fields, options.val_fraction, options.seed, synthetic, drawn[n_train:]
    )
    logger.info(
        "fine-tuning %s on %d corrected (+%d synthetic) fields, %d for validation",
        kind,
        len(train),
        len(synthetic),
        len(val),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = init_dir / WEIGHTS_FILE
    if isinstance(config, CellModelConfig):
        card = train_cells(
            split.data_dir,
            out_dir,
            config,
            epochs=0 if options.epochs == 0 else None,  # 0: keep the weights, refit the rest
            verbose=options.verbose,
            initial_weights=weights,
            split=split,
        )
        scale = scale_fit.chosen if scale_fit is not None else 1.0
        if scale_fit is not None:
            card = _with_input_scale(out_dir, card, scale_fit)
        if options.refit_postprocessing and val:
            reference = synthetic_fields(
                REFIT_REFERENCE_FIELDS, (int(shape_yx[0]), int(shape_yx[1])), options.seed + 1
            )
            # the model resizes by `scale`: reference fields resized by its inverse reach the
            # network at the size it came from
            reference = [rescale_field(f, 1.0 / scale) for f in reference]
            card = refit_cell_postprocessing(
                out_dir, card, [original_of[id(f)] for f in train + val], reference
            )
    else:
        card = train_pnp(
            split.data_dir,
            out_dir,
            config,
            epochs=0 if options.epochs == 0 else None,  # 0: keep the weights, refit the rest
            verbose=options.verbose,
            initial_weights=weights,
            split=split,
            min_multiplicity_basins=MIN_REFIT_BASINS,
        )
    for name in _CARRIED[kind]:
        if not (out_dir / name).is_file() and (init_dir / name).is_file():
            shutil.copy2(init_dir / name, out_dir / name)
            logger.info("kept the initial model's %s (too few corrections to refit it)", name)
    card = review_card(card, fields, train, len(drawn))
    save_card(card, out_dir)
    write_reviews(
        out_dir,
        train,
        val,
        synthetic_n=len(synthetic),
        synthetic_val_n=len(drawn) - len(synthetic),
        options=options,
        init=init_reference or str(init_dir),
    )
    return card


def _at_fitted_scale(
    init_dir: Path, fields: list[CorrectedField]
) -> tuple[list[CorrectedField], ScaleFit]:
    """The corrected fields resized by the input scale fitted on them, and the fit.

    The network then learns them at the size it knows (:mod:`overnight.models.cells_scale`).
    """
    from overnight.models.cells import CellModel
    from overnight.models.cells_scale import fit_input_scale, rescale_field

    fit = fit_input_scale(CellModel.load(init_dir), [f.field for f in fields])
    logger.info("%s", fit.line())
    resized = [replace(f, field=rescale_field(f.field, fit.chosen)) for f in fields]
    return resized, fit


def _with_input_scale(out_dir: Path, card: ModelCard, fit: ScaleFit) -> ModelCard:
    """Write the fitted input scale into the trained model's config; the card, updated."""
    config = load_config(out_dir).model_copy(update={"input_scale": fit.chosen})
    save_config(config, out_dir)
    metrics = {
        f"corrected_f1_at_scale_{scale:g}": round(f1, 4) for scale, f1 in fit.f1_by_scale.items()
    }
    return card.model_copy(
        update={
            "hyper_parameters": config.model_dump(mode="json"),
            "metrics": {**card.metrics, **metrics},
            "provenance": (*card.provenance, fit.line()),
        }
    )


def refit_cell_postprocessing(
    out_dir: Path,
    card: ModelCard,
    fields: list[TrainingField],
    reference: list[TrainingField] | None = None,
) -> ModelCard:
    """Refit the post-processing of the cell model in ``out_dir`` on corrected ``fields``.

    The watershed's pixel parameters were tuned for the trained cell sizes (see
    :mod:`overnight.models.cells_postprocess`); the chosen values are written into the model's
    ``config.json`` and the returned card (hyper-parameters, F1 before/after, a provenance line).
    With ``reference`` fields (of the domain the model came from) the watershed's seeding is
    refitted with them as a guard (:func:`~overnight.models.cells_postprocess.refit_seeding`);
    without, the whole grid on ``fields`` alone (``refit_postprocessing``).
    """
    from overnight.models.cells import CellModel, cell_input
    from overnight.models.cells_postprocess import refit_postprocessing, refit_seeding

    model = CellModel.load(out_dir)
    config = model.config

    def probabilities(group: list[TrainingField]) -> list[np.ndarray]:
        return [
            model.probabilities(cell_input(_cell_channel(f, config.channel_index), config))[0]
            for f in group
        ]

    truths = [f.labels for f in fields]
    if reference is None:
        fitted, fit = refit_postprocessing(config, probabilities(fields), truths)
    else:
        fitted, fit = refit_seeding(
            config,
            probabilities(fields),
            truths,
            probabilities(reference),
            [f.labels for f in reference],
        )
    save_config(fitted, out_dir)
    logger.info("%s", fit.line())
    metrics = {
        **card.metrics,
        "val_corrected_f1_postprocess_before": round(fit.f1_before, 4),
        "val_corrected_f1_postprocess_after": round(fit.f1_after, 4),
    }
    if fit.reference_before is not None and fit.reference_after is not None:
        metrics["reference_f1_postprocess_before"] = round(fit.reference_before, 4)
        metrics["reference_f1_postprocess_after"] = round(fit.reference_after, 4)
    return card.model_copy(
        update={
            "hyper_parameters": fitted.model_dump(mode="json"),
            "metrics": metrics,
            "provenance": (*card.provenance, fit.line()),
        }
    )


def _cell_channel(field: TrainingField, index: int) -> np.ndarray:
    """``ZYX`` channel ``index`` of a field (the last one when it has fewer channels)."""
    return field.image[:, min(index, field.image.shape[1] - 1)].astype(np.float32)


def review_card(
    card: ModelCard,
    fields: list[CorrectedField],
    train: list[CorrectedField],
    n_synthetic_fields: int,
) -> ModelCard:
    """``card`` with the reviews as training data: datasets, digest and one line per review."""
    datasets = sorted({f.source.dataset for f in fields})
    digest = hashlib.sha256("".join(sorted(f.digest for f in fields)).encode()).hexdigest()
    described = f"reviews of {', '.join(datasets)}: {len(fields)} corrected images"
    if n_synthetic_fields:
        described += f" (+{n_synthetic_fields} synthetic fields of TRAINING_RANGES)"
    return card.model_copy(
        update={
            "training_data": described,
            "training_data_sha256": digest,
            "provenance": (*card.provenance, *(f.source.line() for f in fields)),
            "training_ranges": None,
        }
    )


def write_reviews(
    out_dir: Path,
    train: list[CorrectedField],
    val: list[CorrectedField],
    *,
    synthetic_n: int,
    synthetic_val_n: int = 0,
    options: FineTuneOptions,
    init: str,
) -> Path:
    """``reviews.json``: datasets, images (with split), reviewers, versions, as data."""
    images: list[dict[str, Any]] = [
        {**_source_dict(f.source), "split": side, "sha256": f.digest}
        for side, group in (("train", train), ("val", val))
        for f in group
    ]
    body = {
        "init": init,
        "datasets": sorted({f.source.dataset for f in train + val}),
        "reviewers": sorted({f.source.author for f in train + val}),
        "images": images,
        "synthetic_fields": synthetic_n,
        "synthetic_val_fields": synthetic_val_n,
        "synthetic_share": options.synthetic_share,
        "seed": options.seed,
    }
    path = out_dir / REVIEWS_FILE
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def _source_dict(source: ReviewSource) -> dict[str, Any]:
    return {
        "dataset": source.dataset,
        "image_id": source.image_id,
        "annotation_version": source.version,
        "author": source.author,
        "created_at": source.created_at,
        "model_versions": source.model_versions,
    }


__all__ = ["CARD_FILE", "FineTuneOptions", "fine_tune"]
