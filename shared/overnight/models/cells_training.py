"""Training the cell model from annotated images (output format or ``images/`` + ``masks/``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from overnight.evaluation.matching import match_labels
from overnight.models.card import ModelCard, save_card, trained_card
from overnight.models.cells import CellModel, cell_classes, cell_input, instance_labels
from overnight.models.celltypes import cell_features, fit_classifier
from overnight.models.config import CellModelConfig, save_config
from overnight.models.datasets import TrainingField, TrainingSplit, load_split
from overnight.models.loading import WEIGHTS_FILE
from overnight.models.training import (
    TrainingPairs,
    train_network,
)
from overnight.models.unet import count_flops

logger = logging.getLogger(__name__)

#: The reference field of the speed figures: 512² px (the cell model reads one projection).
REFERENCE_FIELD_YX = (512, 512)
#: L2 penalty of the type classifier; 1e-3 erred least on two synthetic tuning sets (seeds 4242
#: and 4343, 28 fields; 1e-2: 4 errors in 542 cells, 1e-3: 3, 1e-1: 14).
TYPE_L2 = 1e-3


def _channel(field: TrainingField, index: int) -> np.ndarray:
    """``ZYX`` channel ``index`` of a field (the last one when it has fewer channels)."""
    return field.image[:, min(index, field.image.shape[1] - 1)].astype(np.float32)


def cell_pairs(fields: list[TrainingField], config: CellModelConfig) -> TrainingPairs:
    """Network inputs, class targets and cell pixels (every 5th) of ``fields``."""
    inputs = [cell_input(_channel(f, config.channel_index), config) for f in fields]
    targets = [cell_classes(f.labels, config.boundary_px) for f in fields]
    features = [np.argwhere(f.labels > 0)[::5] for f in fields]
    return TrainingPairs(inputs, targets, features)


@dataclass(frozen=True)
class SegmentationScore:
    """Instance segmentation against truth: matches at IoU ≥ 0.5 and type accuracy."""

    tp: int
    fp: int
    fn: int
    iou_sum: float
    type_correct: int

    @property
    def f1(self) -> float:
        """F1 at IoU 0.5."""
        return 2 * self.tp / max(2 * self.tp + self.fp + self.fn, 1)

    @property
    def ap50(self) -> float:
        """TP / (TP + FP + FN) at IoU 0.5 (the DSB2018 / StarDist 'AP')."""
        return self.tp / max(self.tp + self.fp + self.fn, 1)


def score_segmentation(
    model: CellModel, fields: list[TrainingField], pixel_size_um: float
) -> SegmentationScore:
    """Segment ``fields`` with ``model`` and score labels (and types where known)."""
    tp = fp = fn = type_correct = 0
    iou_sum = 0.0
    for field in fields:
        prediction = model.segment(_channel(field, model.config.channel_index))
        matches = match_labels(field.labels, prediction.labels)
        n_true = int(np.unique(field.labels[field.labels > 0]).size)
        n_pred = int(prediction.labels.max())
        tp += len(matches.true_ids)
        fp += n_pred - len(matches.true_ids)
        fn += n_true - len(matches.true_ids)
        iou_sum += float(matches.iou.sum())
        if field.cells is not None and "cell_type" in field.cells and model.classifier is not None:
            ids, names, _ = model.classify(
                prediction.labels, prediction.features, field.pixel_size_um or pixel_size_um
            )
            predicted = dict(zip(ids.tolist(), names, strict=True))
            truth = dict(
                zip(field.cells["cell_id"].tolist(), field.cells["cell_type"].tolist(), strict=True)
            )
            type_correct += sum(
                predicted.get(int(p)) == truth.get(int(t))
                for t, p in zip(matches.true_ids, matches.pred_ids, strict=True)
            )
    return SegmentationScore(tp, fp, fn, iou_sum, type_correct)


def _typed_rows(
    labels: np.ndarray,
    features: np.ndarray | None,
    pairs: list[tuple[int, str]],
    pixel_size_um: float,
) -> list[tuple[np.ndarray, str]]:
    """Feature rows of the cells ``pairs`` names (cell id in ``labels``, type name)."""
    ids, x = cell_features(labels, features, pixel_size_um)
    row_of = dict(zip(ids.tolist(), x, strict=True))
    return [(row_of[i], name) for i, name in pairs if i in row_of]


def fit_types(model: CellModel, fields: list[TrainingField], pixel_size_um: float) -> None:
    """Fit the type classifier on the cells the model segments in ``fields``.

    Features come from the predicted cells matched (IoU ≥ 0.5) to true ones, which take the
    true cell's type, so the classifier learns from the shapes it will see at inference. A
    model that matches too few cells (barely trained) learns from the true masks instead.
    """
    names = model.config.cell_types
    predicted: list[tuple[np.ndarray, str]] = []
    true: list[tuple[np.ndarray, str]] = []
    for field in fields:
        if field.cells is None or "cell_type" not in field.cells:
            continue
        size_um = field.pixel_size_um or pixel_size_um
        type_of = dict(
            zip(field.cells["cell_id"].tolist(), field.cells["cell_type"].tolist(), strict=True)
        )
        prediction = model.segment(_channel(field, model.config.channel_index))
        matches = match_labels(field.labels, prediction.labels)
        pairs = [
            (p, type_of[t])
            for t, p in zip(matches.true_ids.tolist(), matches.pred_ids.tolist(), strict=True)
            if type_of.get(t) in names
        ]
        features = prediction.features if model.config.type_network_features else None
        predicted += _typed_rows(prediction.labels, features, pairs, size_um)
        own = [(i, n) for i, n in type_of.items() if n in names]
        true += _typed_rows(field.labels, features, own, size_um)
    for rows in (predicted, true):
        if len({name for _, name in rows}) == len(names) > 1:
            x = np.array([r for r, _ in rows])
            classes = np.array([names.index(n) for _, n in rows])
            model.classifier = fit_classifier(x, classes, names, l2=TYPE_L2)
            return
    logger.info("too few typed cells in the training data: the model gives no types")


def train_cells(
    data_dir: Path,
    out_dir: Path,
    config: CellModelConfig,
    epochs: int | None = None,
    max_images: int | None = None,
    verbose: int = 2,
    initial_weights: Path | None = None,
    split: TrainingSplit | None = None,
) -> ModelCard:
    """Train a cell model (from ``initial_weights`` if given), save it and score it.

    Writes ``config.json``, the weights, ``classifier.json`` (when the data has types) and
    ``card.json`` (validation metrics included) into ``out_dir``. ``epochs=0`` keeps
    ``initial_weights`` and refits only the type classifier. A given ``split`` is trained on
    instead of reading ``data_dir`` (fine-tuning on corrections, :mod:`.retrain`).
    """
    import keras

    if split is None:
        split = load_split(data_dir, config.train.val_fraction, config.train.split_seed, max_images)
    logger.info("cell model: %d training and %d validation images", split.n_train, len(split.val))
    weights = np.asarray(config.class_weights, np.float32)
    network, result = train_network(
        config.unet,
        config.train,
        "cells",
        lambda: (cell_pairs(split.train, config), cell_pairs(split.val, config)),
        keras.losses.SparseCategoricalCrossentropy(),
        out_dir,
        initial_weights,
        epochs,
        weight_fn=lambda y: weights[y],
        verbose=verbose,
    )
    save_config(config, out_dir)
    network.save_weights(out_dir / WEIGHTS_FILE)
    model = CellModel(config, network, None)
    pixel_size_um = config.pixel_size_um or 1.0
    if config.cell_types:
        fit_types(model, split.train, pixel_size_um)
    if model.classifier is not None:
        model.classifier.save(out_dir)
    score = score_segmentation(model, split.val, pixel_size_um)
    metrics = {
        "val_f1_iou50": score.f1,
        "val_ap_iou50": score.ap50,
        "val_mean_iou_matched": score.iou_sum / max(score.tp, 1),
    }
    if result.epochs_run:
        metrics["best_val_loss"] = result.best_val_loss
    if model.classifier is not None:
        metrics["val_type_accuracy"] = score.type_correct / max(score.tp, 1)
    card = trained_card(
        out_dir,
        "cells",
        f"2D U-Net, {config.unet.n_levels} levels, "
        f"{config.unet.base_filters} base filters, "
        f"softmax over {list(config.classes)}; seeded watershed; softmax-regression cell types",
        config,
        network,
        split,
        result,
        metrics,
        channel_roles={
            "0": f"{config.channel_role}: focus-aware projection, percentile-normalised"
        },
        initial_weights=initial_weights,
        flops_per_field=count_flops(config.unet, REFERENCE_FIELD_YX),
    )
    save_card(card, out_dir)
    return card


__all__ = ["cell_pairs", "instance_labels", "score_segmentation", "train_cells"]
