"""Training the particle model from fields in the output format (``pnps.csv`` per image)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from overnight.errors import NoImagesError
from overnight.evaluation.matching import match_points
from overnight.models.card import ModelCard, save_card, trained_card
from overnight.models.config import PnpModelConfig, save_config
from overnight.models.datasets import TrainingField, TrainingSplit, load_split
from overnight.models.loading import WEIGHTS_FILE
from overnight.models.multiplicity import (
    MultiplicityModel,
    basin_features,
    fit_multiplicity,
    particles_per_basin,
)
from overnight.models.pnp import (
    PnpModel,
    blob_peak,
    density_basins,
    density_target,
    extract_spots,
    pnp_input,
    pnp_scale,
)
from overnight.models.training import (
    Augmentation,
    TrainingPairs,
    train_network,
)
from overnight.models.unet import count_flops
from overnight.steps.counting import assign_particles

logger = logging.getLogger(__name__)

#: The reference field of the speed figures: 12 slices of 512² px.
REFERENCE_FIELD_ZYX = (12, 512, 512)
#: Density gains tried by the calibration, and how many training fields the calibration and the
#: multiplicity model use.
CALIBRATION_GAINS = tuple(np.round(np.arange(0.8, 1.41, 0.05), 2))
CALIBRATION_FIELDS = 24
#: Fewer basins than this in the calibration fields give no multiplicity model.
MIN_BASINS = 50
#: Input intensity augmentation: small, since brightness encodes multiplicity.
PNP_AUGMENTATION = Augmentation(scale=(0.9, 1.1), offset=(-0.02, 0.02), noise_sd=(0.0, 0.05))


def pnp_pairs(fields: list[TrainingField], config: PnpModelConfig) -> TrainingPairs:
    """Normalised PNP channels, density targets and particle voxels of ``fields``."""
    inputs, targets, features = [], [], []
    for field in fields:
        if field.pnps is None:
            raise NoImagesError(
                f"{field.image_id}: no pnps.csv; the particle model needs one per image"
            )
        volume = field.image[:, config.channel_index].astype(np.float32)
        inputs.append(pnp_input(volume, pnp_scale(volume)))
        targets.append(density_target(volume.shape, field.pnps, config))
        points = (
            np.rint(field.pnps[["z", "y", "x"]].to_numpy(float)).astype(np.int64).reshape(-1, 3)
        )
        features.append(points)
    return TrainingPairs(inputs, targets, features)


@dataclass(frozen=True)
class DetectionScore:
    """Particles matched within 2 px / 2 slices, and per-cell count errors on true cells."""

    tp: int
    n_true: int
    n_pred: int
    count_abs_error_sum: float
    n_cells: int

    @property
    def f1(self) -> float:
        """Detection F1."""
        return 2 * self.tp / max(self.n_true + self.n_pred, 1)

    @property
    def count_mae(self) -> float:
        """Mean absolute error of the particle count per (true) cell."""
        return self.count_abs_error_sum / max(self.n_cells, 1)


def score_detection(
    model: PnpModel, fields: list[TrainingField], margin_px: float = 2.0
) -> DetectionScore:
    """Detect particles in ``fields``, match them to truth, count them on the true cells."""
    tp = n_true = n_pred = n_cells = 0
    error = 0.0
    for field in fields:
        assert field.pnps is not None
        spots = model.detect(field.image[:, model.config.channel_index].astype(np.float32))
        truth = field.pnps[["z", "y", "x"]].to_numpy(float)
        found = np.column_stack([spots.z, spots.y, spots.x])
        tp += len(match_points(truth, found)[0])
        n_true += len(truth)
        n_pred += len(found)
        counts = assign_particles(field.labels, spots, margin_px)
        true_counts = np.bincount(
            field.pnps["cell_id"].to_numpy(np.int64), minlength=int(field.labels.max()) + 1
        )
        error += float(np.abs(counts.counts - true_counts[counts.cell_ids]).sum())
        n_cells += len(counts.cell_ids)
    return DetectionScore(tp, n_true, n_pred, error, n_cells)


@dataclass(frozen=True)
class FieldDensity:
    """A training field with its network input and raw density (before the gain), ``ZYX``."""

    field: TrainingField
    normalised: np.ndarray
    volume_adu: np.ndarray
    density: np.ndarray


def field_densities(model: PnpModel, fields: list[TrainingField]) -> list[FieldDensity]:
    """Network input, background-subtracted volume and density of the first calibration fields."""
    found = []
    for field in fields[:CALIBRATION_FIELDS]:
        volume = field.image[:, model.config.channel_index].astype(np.float32)
        scale = pnp_scale(volume)
        normalised = pnp_input(volume, scale)
        found.append(
            FieldDensity(
                field, normalised, volume - scale.background_adu, model.density(normalised)
            )
        )
    return found


def _cell_truth(field: TrainingField) -> np.ndarray:
    """True particles per cell id (index = cell id) of a training field."""
    assert field.pnps is not None
    return np.bincount(
        field.pnps["cell_id"].to_numpy(np.int64), minlength=int(field.labels.max()) + 1
    )


def calibrate_gain(model: PnpModel, densities: list[FieldDensity]) -> PnpModelConfig:
    """``model.config`` with the density gain that minimises the per-cell count error.

    Density regression shrinks faint spots' integrals, so counts come out low; one gain,
    chosen on training images, removes that bias (and sets where basins are cut).
    """
    best = (np.inf, model.config.density_gain)
    for gain in CALIBRATION_GAINS:
        config = model.config.model_copy(update={"density_gain": float(gain)})
        error = 0.0
        for item in densities:
            spots = extract_spots(item.density * np.float32(gain), item.volume_adu, config)
            counts = assign_particles(item.field.labels, spots, 2.0)
            error += float(np.abs(counts.counts - _cell_truth(item.field)[counts.cell_ids]).sum())
        best = min(best, (error, float(gain)))
    logger.info(
        "density gain %.2f (count error %.0f on %d fields)", best[1], best[0], len(densities)
    )
    return model.config.model_copy(update={"density_gain": best[1]})


def fit_basin_multiplicity(
    config: PnpModelConfig, densities: list[FieldDensity], min_basins: int = MIN_BASINS
) -> MultiplicityModel | None:
    """Fit how many particles a basin holds to the training fields' basins and particles.

    None when the network finds fewer than ``min_basins`` basins to learn from; the model then
    counts by basin integral (or keeps its initial multiplicity model, see :func:`train_pnp`).
    """
    peak = blob_peak(config)
    rows, particles = [], []
    for item in densities:
        assert item.field.pnps is not None
        density = item.density * np.float32(config.density_gain)
        basins = density_basins(density, config)
        rows.append(basin_features(density, item.normalised, basins, config.density_scale, peak))
        points = item.field.pnps[["z", "y", "x"]].to_numpy(float).reshape(-1, 3)
        particles.append(particles_per_basin(basins, points))
    x, y = np.concatenate(rows), np.concatenate(particles)
    if len(x) < min_basins:
        logger.warning(
            "only %d basins in the calibration fields (a fit needs %d): no new multiplicity model",
            len(x),
            min_basins,
        )
        return None
    logger.info("multiplicity model: %d basins holding %d particles", len(x), int(y.sum()))
    return fit_multiplicity(x, y)


def network_description(config: PnpModelConfig) -> str:
    """The network of ``config`` in words, for the model card."""
    unet = config.unet
    if unet.z_window_slices:
        return (
            f"2.5-D U-Net: a 2D U-Net over {unet.z_window_slices}-slice windows taken as "
            f"channels, {unet.n_levels} levels, {unet.base_filters} base filters"
        )
    return (
        f"3D U-Net, {unet.n_levels} levels (pooling in YX only), {unet.base_filters} base filters"
    )


def train_pnp(
    data_dir: Path,
    out_dir: Path,
    config: PnpModelConfig,
    epochs: int | None = None,
    max_images: int | None = None,
    verbose: int = 2,
    initial_weights: Path | None = None,
    split: TrainingSplit | None = None,
    min_multiplicity_basins: int = MIN_BASINS,
) -> ModelCard:
    """Train a particle model (from ``initial_weights`` if given), save it and score it.

    After the network, the density gain and the multiplicity model are fitted on the
    validation fields (unseen by the network's weights); with fewer than
    ``min_multiplicity_basins`` basins there, the initial model's multiplicity model (in the
    folder of ``initial_weights``) is kept. ``epochs=0`` skips the network (it
    keeps ``initial_weights``) and refits only those. Writes ``config.json``, the weights,
    ``multiplicity.json`` and ``card.json`` (validation metrics included). A given ``split``
    is trained on instead of reading ``data_dir`` (fine-tuning on corrections, :mod:`.retrain`).
    """
    import keras

    if split is None:
        split = load_split(data_dir, config.train.val_fraction, config.train.split_seed, max_images)
    logger.info(
        "particle model: %d training and %d validation images", split.n_train, len(split.val)
    )
    network, result = train_network(
        config.unet,
        config.train,
        "pnp",
        lambda: (pnp_pairs(split.train, config), pnp_pairs(split.val, config)),
        keras.losses.MeanSquaredError(),
        out_dir,
        initial_weights,
        epochs,
        PNP_AUGMENTATION,
        verbose=verbose,
    )
    # Gain and multiplicity are fitted on the validation images, which the network never
    # trained on: on its own training images its blobs are sharper than on new fields, and a
    # multiplicity model fitted there under-counted unseen fields by ~2.6 % (pairs as singles).
    densities = field_densities(PnpModel(config, network), split.val)
    config = calibrate_gain(PnpModel(config, network), densities)
    multiplicity = fit_basin_multiplicity(config, densities, min_multiplicity_basins)
    if multiplicity is None and initial_weights is not None:
        multiplicity = MultiplicityModel.load(initial_weights.parent)
        if multiplicity is not None:
            logger.info("kept the initial model's multiplicity model")
    del densities
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, out_dir)
    network.save_weights(out_dir / WEIGHTS_FILE)
    if multiplicity is not None:
        multiplicity.save(out_dir)
    score = score_detection(PnpModel(config, network, multiplicity), split.val)
    metrics = {"val_detection_f1": score.f1, "val_count_mae_per_cell": score.count_mae}
    if result.epochs_run:
        metrics["best_val_loss"] = result.best_val_loss
    card = trained_card(
        out_dir,
        "pnp",
        f"{network_description(config)}, density regression; watershed basins, "
        "particles per basin by a calibrated softmax regression on basin features",
        config,
        network,
        split,
        result,
        metrics,
        channel_roles={"0": f"{config.channel_role}: minus background, / typical single-spot peak"},
        initial_weights=initial_weights,
        flops_per_field=count_flops(config.unet, REFERENCE_FIELD_ZYX),
    )
    save_card(card, out_dir)
    return card
