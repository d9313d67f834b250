"""The skin-compartment model: a 2D multi-class U-Net on en-face SRS planes, class-balanced.

Each plane of a ``ZCYX`` stack is segmented on its own (2D networks even for 3D data, as the
lab did: less memory, no assumption about the z spacing). The input is the structure (CH₂)
channel, optionally with the drug channel (``SkinModelConfig.channel_indices``), normalised
per stack by percentiles so that bright and dark depths keep their relative brightness, and
mean-pooled by ``downsample`` (skin structures are 10–200 µm across: at 1 µm/px a 4-level
U-Net sees a whole corneocyte or fat cell). A ``depth_input`` model (the training recipe of
:func:`skin_config`) also reads the plane's depth below the surface as a last channel,
``depth_um / depth_scale_um`` constant over the plane, so every caller passes the planes'
``depths_um``; it is jittered in training (a soft prior, not a lookup). Class probabilities
are interpolated back to the full grid before the argmax.

Class balancing (compartments absent from many planes must not be drowned out):

- the loss is a pixel-weighted cross-entropy with :func:`class_weights` (inverse frequency
  to ``balance_power``, capped) plus a soft Dice term that counts every present class equally;
- ``class_centred_fraction`` of the training patches are centred on a pixel of a class drawn
  uniformly among the classes, so a rare compartment is seen as often as a common one.

A model folder holds ``config.json`` (:class:`SkinModelConfig`), ``weights.weights.h5``,
``card.json`` and, when trained on synthetic series, ``training_look.json`` (the generator
ranges of each look trained on). :func:`train_skin` (the ``overnight train skin`` command)
prepares the planes and runs the shared training loop of :mod:`overnight.models.training`
(checkpoints, mixed precision, ``init`` weights).

Training data: a folder in the synthetic layout (``images/<id>.tif`` ``ZCYX`` +
``truth/<id>/labels.tif`` ``ZYX``), or series drawn with
:func:`overnight.synth.skin.draw_skin_series` in the looks ``config.train_looks`` in turn (by
default ``"spec"`` and ``"training"``, every range of IMAGING_MODEL.md §2 widened; see
:mod:`overnight.synth.skin_look`), one random timepoint of each of ``n_series`` independent
regions. Planes, patches and augmentation: :mod:`overnight.models.skin_data`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from overnight.errors import ConfigError, ModelNotFoundError
from overnight.models.card import ModelCard, lineage, save_card
from overnight.models.config import CONFIG_FILE, TrainConfig, UNetConfig
from overnight.models.loading import WEIGHTS_FILE, models_root, resolve_model_dir
from overnight.models.tiling import predict_tiled
from overnight.models.training import FitResult, train_network

if TYPE_CHECKING:
    from overnight.models.skin_data import PlaneSet

logger = logging.getLogger(__name__)

#: Compartments of IMAGING_MODEL.md §2 in label order (label k = ``COMPARTMENTS[k - 1]``).
COMPARTMENTS: tuple[str, ...] = (
    "stratum_corneum",
    "viable_epidermis",
    "hair_follicle",
    "dermis",
    "adipose",
)
#: The shipped model's folder name under ``models/``.
DEFAULT_MODEL = "skin"
#: Depth (µm) that a depth_input model sees as 1.0 (the deepest planes of §2 are ~150 µm).
DEPTH_SCALE_UM = 150.0


class SkinModelConfig(BaseModel):
    """Every hyper-parameter of the skin-compartment model (saved as ``config.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["skin"] = "skin"
    # model_validate: pydantic fills the defaults (mypy without the pydantic plugin would not)
    unet: UNetConfig = UNetConfig.model_validate(
        {"ndim": 2, "in_channels": 1, "out_channels": 6, "n_levels": 5, "base_filters": 16}
    )
    compartments: tuple[str, ...] = Field(
        COMPARTMENTS, description="label k is compartments[k-1]; 0 = none"
    )
    channel_indices: tuple[int, ...] = Field(
        (0,), description="stack channels fed to the network, in order"
    )
    channel_roles: tuple[str, ...] = Field(
        ("structure",), description="what each of those channels holds"
    )
    depth_input: bool = Field(
        False,
        description="feed each plane's depth (depth_um / depth_scale_um, constant over the "
        "plane) as a last input channel; such a model needs the planes' depths",
    )
    depth_scale_um: float = Field(DEPTH_SCALE_UM, gt=0, description="depth fed as 1.0 (µm)")
    depth_jitter_um: float = Field(
        12.0, ge=0, description="training: ± offset of the depth fed to the network (µm)"
    )
    depth_jitter_scale: tuple[float, float] = Field(
        (0.8, 1.2), description="training: range of a factor on the depth fed to the network"
    )
    pixel_size_um: float = Field(0.5, gt=0, description="pixel size of the training images (µm)")
    downsample: int = Field(2, ge=1, description="mean-pooling factor before the network (px)")
    normalise_percentiles: tuple[float, float] = Field(
        (1.0, 99.8), description="per-stack, per-channel percentiles mapped to 0 and 1"
    )
    class_weights: tuple[float, ...] = Field(
        (), description="loss weight per class (0 = none first), set from the training labels"
    )
    balance_power: float = Field(
        0.5, ge=0, description="weight = (median frequency / frequency) ** this"
    )
    max_class_weight: float = Field(
        10.0, ge=1, description="cap of a class weight relative to the median"
    )
    dice_weight: float = Field(0.5, ge=0, description="weight of the soft Dice term of the loss")
    class_centred_fraction: float = Field(
        0.6, ge=0, le=1, description="share of patches centred on a uniformly drawn class"
    )
    tile_px: int = Field(512, ge=16, description="inference tile side at the network's scale (px)")
    tile_overlap_px: int = Field(64, ge=0, description="overlap of neighbouring tiles (px)")
    train: TrainConfig = TrainConfig.model_validate(
        {
            # make train: ~35 min on 2 shared cores (mixed precision bf16), data included;
            # 256 pooled px = 256 µm of context (two follicles' width)
            "epochs": 150,  # the time budget ends the run first
            "steps_per_epoch": 50,
            "batch_size": 4,
            "patch_yx_px": 256,
            "val_patches": 48,
            "patience": 12,
            "learning_rate": 2e-3,
            "time_budget_s": 1920.0,  # the cap that ends the run on 2 cores
            "feature_fraction": 0.6,  # set from class_centred_fraction when training
            "mixed_precision": True,
        }
    )
    train_looks: tuple[str, ...] = Field(
        ("spec", "training"),
        description="generator looks of synthetic training series, in turn "
        "(overnight.synth.skin_look.LOOKS; never 'evaluation')",
    )

    @model_validator(mode="after")
    def _consistent(self) -> SkinModelConfig:
        if self.unet.ndim != 2 or self.unet.head_activation != "softmax":
            raise ValueError("the skin model is a 2D U-Net with a softmax head")
        if self.unet.out_channels != len(self.compartments) + 1:
            raise ValueError(
                f"unet.out_channels must be {len(self.compartments) + 1} (none + "
                f"{len(self.compartments)} compartments), got {self.unet.out_channels}"
            )
        if self.unet.in_channels != len(self.channel_indices) + int(self.depth_input):
            raise ValueError(
                f"unet.in_channels ({self.unet.in_channels}) must equal the number of "
                f"channel_indices {self.channel_indices}"
                + (" + 1 (depth_input)" if self.depth_input else "")
            )
        if self.class_weights and len(self.class_weights) != self.unet.out_channels:
            raise ValueError(
                f"{len(self.class_weights)} class weights for {self.unet.out_channels} classes"
            )
        return self

    @property
    def n_classes(self) -> int:
        """Classes of the network output (none + compartments)."""
        return len(self.compartments) + 1


def skin_config(
    channel_indices: tuple[int, ...] = (0,), depth_input: bool = True, **updates: Any
) -> SkinModelConfig:
    """The training recipe reading ``channel_indices`` (``(0,)`` structure, ``(0, 1)`` both).

    ``depth_input`` (the recipe's default) adds the plane's depth as a last input channel:
    what a plane shows depends on its depth (IMAGING_MODEL.md §2: stratum corneum 0–15 µm,
    viable epidermis to ~60 µm, dermis and fat below), which one plane alone hardly tells.

    The structure channel alone is the default: the drug channel is empty before the drug
    arrives and changes over time, so a model that leans on it segments pre-dose and
    post-dose stacks differently. ``(0, 1)`` is there for drugs whose uptake itself outlines
    the compartments.
    """
    roles = {0: "structure", 1: "drug"}
    unet = SkinModelConfig.model_validate({}).unet
    unet = unet.model_copy(update={"in_channels": len(channel_indices) + int(depth_input)})
    fields: dict[str, Any] = {
        "unet": unet,
        "depth_input": depth_input,
        "channel_indices": tuple(channel_indices),
        "channel_roles": tuple(roles.get(i, f"channel{i}") for i in channel_indices),
    }
    return SkinModelConfig.model_validate({**fields, **updates})


def class_weights(counts: np.ndarray, power: float = 0.5, max_weight: float = 10.0) -> np.ndarray:
    """Loss weight per class from pixel counts: rarer classes weigh more, absent ones nothing.

    ``w_c = min((median_f / f_c) ** power, max_weight)`` over the present classes (``f`` their
    frequencies), then scaled so that the mean weight of a training pixel is 1.

    Parameters
    ----------
    counts : ndarray of shape (K,)
        Pixels of each class in the training labels.
    power, max_weight : float
        Strength of the balancing (0 = none, 1 = full inverse frequency) and its cap.

    Returns
    -------
    ndarray of float32, shape (K,)

    Examples
    --------
    >>> class_weights(np.array([0, 100, 100, 25]), power=1.0).round(3).tolist()
    [0.0, 0.75, 0.75, 3.0]
    """
    counts = np.asarray(counts, dtype=float)
    present = counts > 0
    if not present.any():
        raise ValueError("no labelled pixels: cannot weigh the classes")
    freq = counts / counts.sum()
    weights = np.zeros_like(freq)
    median = np.median(freq[present])
    weights[present] = np.minimum((median / freq[present]) ** power, max_weight)
    weights /= float(np.sum(freq * weights))
    return weights.astype(np.float32)


def normalise_stack(stack: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Map each channel of a ``ZCYX`` stack so that its percentiles (over all planes) go to 0, 1.

    Parameters
    ----------
    stack : ndarray of shape (Z, C, Y, X)
    percentiles : (float, float)

    Returns
    -------
    ndarray of float32, shape (Z, C, Y, X)
    """
    data = np.asarray(stack, dtype=np.float32)
    out = np.empty_like(data)
    for c in range(data.shape[1]):
        sample = data[:, c, ::2, ::2]
        low, high = np.percentile(sample, percentiles)
        out[:, c] = (data[:, c] - low) / max(float(high - low), 1e-6)
    return out


def downsample_mean(planes: np.ndarray, factor: int) -> np.ndarray:
    """Mean-pool the last two axes by ``factor`` (edge-padded up to a multiple of it)."""
    if factor == 1:
        return np.asarray(planes, dtype=np.float32)
    pad = [(0, 0)] * (planes.ndim - 2) + [(0, (-s) % factor) for s in planes.shape[-2:]]
    padded = np.pad(planes, pad, mode="edge") if any(p[1] for p in pad) else planes
    y, x = padded.shape[-2] // factor, padded.shape[-1] // factor
    shaped = padded.reshape(*padded.shape[:-2], y, factor, x, factor)
    return shaped.mean(axis=(-3, -1), dtype=np.float32)


def plane_depths(config: SkinModelConfig, n_planes: int, depths_um: Any) -> np.ndarray:
    """The depth channel's value of each plane: ``depths_um / depth_scale_um``, shape ``(Z,)``.

    Raises
    ------
    ConfigError
        When ``depths_um`` is missing, of another length than the planes or not finite (a
        ``depth_input`` model must not guess where a plane lies).

    Examples
    --------
    >>> plane_depths(skin_config(), 2, [0.0, 75.0]).tolist()
    [0.0, 0.5]
    """
    if depths_um is None:
        raise ConfigError(
            "this skin model reads each plane's depth (depth_input): give the planes' "
            "depths_um (µm below the surface; a series' sidecar or file metadata)"
        )
    depths = np.asarray(depths_um, dtype=np.float64).ravel()
    if depths.shape != (n_planes,) or not np.all(np.isfinite(depths)):
        raise ConfigError(f"need {n_planes} finite plane depths (µm), got {list(depths_um)}")
    return (depths / config.depth_scale_um).astype(np.float32)


def network_input(stack: np.ndarray, config: SkinModelConfig, depths_um: Any = None) -> np.ndarray:
    """The network's input of a raw ``ZCYX`` stack: ``(Z, Y/d, X/d, C_in)`` float32.

    ``depths_um`` (length Z, µm below the surface) is needed by a ``config.depth_input``
    model, whose last channel is the plane's depth (:func:`plane_depths`); others ignore it.
    """
    if stack.ndim != 4 or max(config.channel_indices) >= stack.shape[1]:
        raise ValueError(
            f"need a ZCYX stack with channels {config.channel_indices}, got shape {stack.shape}"
        )
    depth = plane_depths(config, stack.shape[0], depths_um) if config.depth_input else None
    chosen = normalise_stack(stack[:, list(config.channel_indices)], config.normalise_percentiles)
    image = np.moveaxis(downsample_mean(chosen, config.downsample), 1, -1)
    if depth is None:
        return image
    channel = np.broadcast_to(depth[:, None, None, None], (*image.shape[:-1], 1))
    return np.concatenate([image, channel], axis=-1)


def class_balanced_loss(weights: np.ndarray, dice_weight: float) -> Any:
    """Keras loss: class-weighted cross-entropy + ``dice_weight`` × (1 − mean soft Dice).

    ``y_true`` holds class indices ``(B, Y, X)``, ``y_pred`` softmax output ``(B, Y, X, K)``.
    The Dice mean runs over the classes present in the batch that have a weight > 0.
    """
    import tensorflow as tf

    w = tf.constant(np.asarray(weights, np.float32))
    n_classes = int(w.shape[0])

    def loss(y_true: Any, y_pred: Any) -> Any:
        y_pred = tf.cast(y_pred, tf.float32)  # mixed precision: the loss in float32
        labels = tf.cast(tf.reshape(y_true, tf.shape(y_pred)[:-1]), tf.int32)
        onehot = tf.one_hot(labels, n_classes)
        p = tf.clip_by_value(y_pred, 1e-7, 1.0)
        pixel_w = tf.gather(w, labels)
        ce = -tf.reduce_sum(onehot * tf.math.log(p), axis=-1)
        ce_term = tf.reduce_sum(pixel_w * ce) / (tf.reduce_sum(pixel_w) + 1e-6)
        inter = tf.reduce_sum(onehot * p, axis=(0, 1, 2))
        total = tf.reduce_sum(onehot + p, axis=(0, 1, 2))
        dice = (2.0 * inter + 1.0) / (total + 1.0)
        counted = tf.cast((tf.reduce_sum(onehot, axis=(0, 1, 2)) > 0) & (w > 0), tf.float32)
        dice_term = 1.0 - tf.reduce_sum(dice * counted) / tf.maximum(tf.reduce_sum(counted), 1.0)
        return ce_term + dice_weight * dice_term

    return loss


def iou_per_class(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Intersection over union of each class over all pixels given (NaN where in neither).

    Examples
    --------
    >>> iou_per_class(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3).round(2).tolist()
    [1.0, 0.5, 0.5]
    """
    t = np.asarray(truth, dtype=np.intp).ravel()
    p = np.asarray(predicted, dtype=np.intp).ravel()
    joint = np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )
    inter = np.diag(joint).astype(float)
    union = joint.sum(0) + joint.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


@dataclass(frozen=True, eq=False)
class SkinModel:
    """A loaded skin model: its config, network, compiled predictor and version string."""

    config: SkinModelConfig
    network: Any
    predict: Any
    version: str = "untrained"


def from_network(config: SkinModelConfig, network: Any, version: str = "untrained") -> SkinModel:
    """Wrap a built (or trained) network with its predictor (:mod:`overnight.models.runtime`)."""
    from overnight.models.runtime import network_predictor

    return SkinModel(config, network, network_predictor(network, config.unet), version)


def build_skin_model(config: SkinModelConfig) -> SkinModel:
    """A freshly initialised model of ``config``."""
    from overnight.models.unet import build_unet

    return from_network(config, build_unet(config.unet, name="skin"))


def class_probabilities(model: SkinModel, stack: np.ndarray, depths_um: Any = None) -> np.ndarray:
    """Per-plane class probabilities of a raw ``ZCYX`` stack: ``(Z, K, Y, X)`` float32.

    ``depths_um`` (length Z, µm below the surface) is required by a ``depth_input`` model
    (:class:`~overnight.errors.ConfigError` without it) and ignored by others.
    """
    config = model.config
    inputs = network_input(stack, config, depths_um)
    shape_yx = stack.shape[-2:]
    out = np.empty((stack.shape[0], config.n_classes, *shape_yx), np.float32)
    for z, plane in enumerate(inputs):
        (probs,) = predict_tiled(
            model.predict,
            plane,
            config.tile_px,
            config.tile_overlap_px,
            config.unet.size_multiple_px,
        )
        out[z] = upsample_probabilities(np.moveaxis(probs, -1, 0), config.downsample, shape_yx)
    return out


def _linear_axis(array: np.ndarray, axis: int, n_out: int, factor: int) -> np.ndarray:
    """Linear interpolation along ``axis`` onto ``n_out`` points of a grid ``factor`` finer."""
    position = (np.arange(n_out, dtype=np.float32) - (factor - 1) / 2) / factor
    position = np.clip(position, 0, array.shape[axis] - 1)
    lower = np.minimum(position.astype(np.intp), array.shape[axis] - 1)
    upper = np.minimum(lower + 1, array.shape[axis] - 1)
    weight = (position - lower).reshape([-1 if a == axis else 1 for a in range(array.ndim)])
    low, high = np.take(array, lower, axis=axis), np.take(array, upper, axis=axis)
    return low + (high - low) * weight


def upsample_probabilities(probs: np.ndarray, factor: int, shape_yx: tuple[int, ...]) -> np.ndarray:
    """Bilinear ``(K, y, x)`` → ``(K, Y, X)``; pooled pixel i is centred at ``d·i + (d − 1)/2``.

    Beyond the outermost pooled centres the edge values are kept (no extrapolation).
    """
    if factor == 1:
        return probs[:, : shape_yx[0], : shape_yx[1]]
    rows = _linear_axis(np.asarray(probs, np.float32), 1, shape_yx[0], factor)
    return _linear_axis(rows, 2, shape_yx[1], factor).astype(np.float32, copy=False)


def segment_stack(model: SkinModel, stack: np.ndarray, depths_um: Any = None) -> np.ndarray:
    """Compartment labels of every plane of a raw ``ZCYX`` stack: ``ZYX`` uint8, 0 = none.

    ``depths_um``: as for :func:`class_probabilities`.
    """
    return np.argmax(class_probabilities(model, stack, depths_um), axis=1).astype(np.uint8)


def save_skin_model(model: SkinModel, model_dir: Path) -> Path:
    """Write ``config.json`` and the weights into ``model_dir``; returns the folder."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / CONFIG_FILE).write_text(model.config.model_dump_json(indent=2) + "\n")
    model.network.save_weights(model_dir / WEIGHTS_FILE)
    return model_dir


def load_skin_model(reference: str | Path | None = None) -> SkinModel:
    """Load a skin model: the shipped one (``None``), a folder, a name or an object-store URI.

    Raises
    ------
    ModelNotFoundError
        When the folder has no valid skin ``config.json`` or no weights.
    """
    from overnight.models.loading import model_version
    from overnight.models.unet import build_unet

    # the shipped model by absolute path, so that a folder named "skin" in the working
    # directory cannot stand in for it
    shipped = models_root() / DEFAULT_MODEL
    model_dir = resolve_model_dir(str(reference) if reference else str(shipped), "skin")
    try:
        config = SkinModelConfig.model_validate(json.loads((model_dir / CONFIG_FILE).read_text()))
    except (ValidationError, json.JSONDecodeError) as err:
        raise ModelNotFoundError(f"{model_dir}: not a skin model config: {err}") from err
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelNotFoundError(
            f"{model_dir}: no {WEIGHTS_FILE}; train it with `overnight train skin`"
        )
    network = build_unet(config.unet, name="skin")
    network.load_weights(weights)
    return from_network(config, network, model_version(model_dir))


def _configure(epochs: int | None, options: dict[str, Any]) -> SkinModelConfig:
    config = options.pop("config", None) or skin_config(
        tuple(options.pop("channel_indices", (0,))), bool(options.pop("depth_input", True))
    )
    updates: dict[str, Any] = {
        k: options.pop(k) for k in ("time_budget_s", "steps_per_epoch") if k in options
    }
    if epochs:
        updates["epochs"] = epochs
    updates["feature_fraction"] = config.class_centred_fraction
    looks = options.pop("looks", None)
    config = config.model_copy(update={"train_looks": tuple(looks)} if looks else {})
    return config.model_copy(update={"train": config.train.model_copy(update=updates)})


def train_skin(
    data: Path | None, out: Path, epochs: int | None = None, seed: int = 0, **options: Any
) -> Path:
    """Train the skin model into ``out`` (``config.json``, weights, ``card.json``).

    Parameters
    ----------
    data : Path, optional
        A folder in the synthetic layout (``images/*.tif`` ZCYX + ``truth/<id>/labels.tif``);
        ``None`` (or a folder without ``images/``) draws synthetic series with the generator.
    out : Path
        Model folder to write.
    epochs : int, optional
        Most epochs (default: the config's); training also stops at its time budget.
        ``0`` keeps the ``init`` weights and only rescores and rewrites the model.
    seed : int
        Seed of the synthetic data, the patch sampling and the initial weights.
    **options
        ``config`` (a :class:`SkinModelConfig`), ``init`` (weights file or model folder to
        start from: resume or fine-tune), ``n_series``, ``n_val_series``, ``size``
        (synthetic planes, px), ``looks`` (generator looks), ``time_budget_s``,
        ``steps_per_epoch``, ``channel_indices``, ``depth_input`` (default True: the
        plane's depth as an input channel; see :func:`skin_config`).

    Returns
    -------
    Path
        ``out``.
    """
    from overnight.models.skin_data import (
        LOOK_FILE,
        N_SERIES,
        N_VAL_SERIES,
        SYNTH_SIZE_PX,
        plane_iou,
        skin_augmentation,
        training_pairs,
        training_planes,
    )

    out = Path(out)
    config = _configure(epochs, options)
    config = config.model_copy(
        update={"train": config.train.model_copy(update={"seed": seed, "split_seed": seed})}
    )
    init = options.pop("init", None)
    if init is not None and Path(init).is_dir():
        init = Path(init) / WEIGHTS_FILE
    n_series = int(options.pop("n_series", N_SERIES))
    n_val = int(options.pop("n_val_series", N_VAL_SERIES))
    size = int(options.pop("size", SYNTH_SIZE_PX))
    if options:
        raise ConfigError(f"unknown training options {sorted(options)}")
    train, val, source, digest = training_planes(data, config, seed, n_series, n_val, size)
    counts = np.bincount(
        np.concatenate([lab.ravel() for lab in train.labels]), minlength=config.n_classes
    )
    weights = class_weights(
        counts[: config.n_classes], config.balance_power, config.max_class_weight
    )
    config = config.model_copy(update={"class_weights": tuple(round(float(w), 4) for w in weights)})
    logger.info(
        "%d training planes, %d validation planes; class weights %s",
        len(train.inputs),
        len(val.inputs),
        config.class_weights,
    )
    network, result = train_network(
        config.unet,
        config.train,
        "skin",
        lambda: (
            training_pairs(train, config.n_classes, seed),
            training_pairs(val, config.n_classes, seed + 1),
        ),
        class_balanced_loss(weights, config.dice_weight),
        out,
        Path(init) if init is not None else None,
        epochs,
        skin_augmentation(config),
    )
    trained = from_network(config, network)
    iou = plane_iou(trained, val)
    save_skin_model(trained, out)
    ranges = None
    if data is None or not (Path(data) / "images").is_dir():
        from overnight.synth.skin_look import LOOKS

        ranges = {name: asdict(LOOKS[name]) for name in config.train_looks}
        (out / LOOK_FILE).write_text(json.dumps(ranges, indent=2) + "\n")
    _write_card(trained, out, result, iou, (source, digest), (train, val), init, ranges)
    return out


def _write_card(
    model: SkinModel,
    out: Path,
    result: FitResult,
    iou: np.ndarray,
    data: tuple[str, str],
    planes: tuple[PlaneSet, PlaneSet],
    init: Path | None,
    ranges: dict[str, Any] | None,
) -> None:
    """Write ``card.json``; ``data`` is (source, its SHA-256), ``planes`` (training, validation)."""
    from overnight.models.unet import count_flops

    config = model.config
    (source, digest), (train, val) = data, planes
    names = ("none", *config.compartments)
    metrics = {
        f"val_iou_{n}": round(float(v), 4)
        for n, v in zip(names, iou, strict=True)
        if np.isfinite(v)
    }
    metrics["val_mean_iou_compartments"] = round(float(np.nanmean(iou[1:])), 4)
    if np.isfinite(result.best_val_loss):
        metrics["best_val_loss"] = round(result.best_val_loss, 4)
    unet = config.unet
    card = ModelCard(
        name=out.name,
        kind="skin",
        architecture=(
            f"2D U-Net, {unet.n_levels} levels, {unet.base_filters} filters, softmax over "
            f"{unet.out_channels} classes, input mean-pooled {config.downsample}x"
            + (", plane depth as a last input channel" if config.depth_input else "")
        ),
        parameters=int(model.network.count_params()),
        hyper_parameters=config.model_dump(mode="json"),
        channel_roles={
            str(i): r for i, r in zip(config.channel_indices, config.channel_roles, strict=True)
        },
        pixel_size_um=config.pixel_size_um,
        training_data=source,
        training_data_sha256=digest,
        n_train_images=len(train.inputs),
        n_val_images=len(val.inputs),
        val_images=tuple(sorted({i.split(":")[0] for i in val.ids})),
        initial_weights=str(init) if init is not None else None,
        provenance=lineage(Path(init) if init is not None else None),
        epochs_run=result.epochs_run,
        training_seconds=round(result.seconds, 1),
        metrics=metrics,
        flops_per_field=count_flops(unet, (512 // config.downsample, 512 // config.downsample)),
        training_ranges=ranges,
    )
    save_card(card, out)
    logger.info("skin model saved to %s: %s", out, metrics)
