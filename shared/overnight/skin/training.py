"""Training the skin-compartment model (:mod:`overnight.models.skin`): planes, patches, the loop.

Training planes come from a folder in the synthetic layout (``images/<id>.tif`` ``ZCYX`` +
``truth/<id>/labels.tif`` ``ZYX``) or are drawn with :func:`overnight.synth.skin.draw_skin_series`
(one random timepoint of each of ``n_series`` independent skin regions, 6–12 depths each).
Every plane is turned into the network's input once (per-stack normalisation, pooling) and
kept in memory at the network's scale with its labels (the pooled grid's centre pixels).

Patches: ``class_centred_fraction`` of them are centred on a pixel of a class drawn uniformly
among the classes present in the training set; the rest anywhere. Augmentation: 90° rotations,
flips, intensity scale and offset, Gaussian noise.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from overnight.errors import ConfigError, InvalidImageError
from overnight.models.card import ModelCard, save_card
from overnight.models.skin import (
    SkinModel,
    SkinModelConfig,
    build_skin_model,
    class_balanced_loss,
    class_weights,
    from_network,
    iou_per_class,
    network_input,
    save_skin_model,
    skin_config,
)

logger = logging.getLogger(__name__)

#: Defaults of the synthetic training set: series, validation series and plane side (px).
N_SERIES = 28
N_VAL_SERIES = 4
SYNTH_SIZE_PX = 384
#: Fewest pixels (network scale) of a class in a plane for the plane to centre patches on it.
MIN_CLASS_PX = 16


@dataclass(frozen=True)
class PlaneSet:
    """Network inputs ``(y, x, C)`` float32 and labels ``(y, x)`` uint8 at the network's scale."""

    inputs: list[np.ndarray]
    labels: list[np.ndarray]
    ids: list[str]


def stack_planes(
    stack: np.ndarray, labels: np.ndarray, config: SkinModelConfig, image_id: str
) -> PlaneSet:
    """The planes of one ``ZCYX`` stack and its ``ZYX`` labels, at the network's scale."""
    if labels.shape != (stack.shape[0], *stack.shape[2:]):
        raise ConfigError(f"{image_id}: labels {labels.shape} do not match the stack {stack.shape}")
    inputs = network_input(stack, config)
    d = config.downsample
    pad = [(0, 0), *[(0, (-s) % d) for s in labels.shape[1:]]]
    pooled = np.pad(labels, pad, mode="edge")[:, d // 2 :: d, d // 2 :: d]
    return PlaneSet(
        list(inputs),
        list(pooled.astype(np.uint8)),
        [f"{image_id}:z{z}" for z in range(len(inputs))],
    )


def _merge(sets: list[PlaneSet]) -> PlaneSet:
    return PlaneSet(*(sum((getattr(s, f) for s in sets), []) for f in ("inputs", "labels", "ids")))


def synthetic_planes(seed: int, n_series: int, size_px: int, config: SkinModelConfig) -> PlaneSet:
    """Planes of ``n_series`` synthetic skin regions drawn from ``seed``."""
    from overnight.synth.skin import draw_skin_series

    rng = np.random.default_rng(seed)
    sets = []
    for i in range(n_series):
        series = draw_skin_series(
            rng,
            size=size_px,
            n_depths=int(rng.integers(6, 13)),
            n_timepoints=6,
            compartments=config.compartments,
        )
        index = int(rng.integers(series.n_timepoints))
        sets.append(
            stack_planes(series.stack(index), series.labels(index), config, f"synth{seed}-{i}")
        )
    return _merge(sets)


def folder_planes(data: Path, config: SkinModelConfig) -> tuple[PlaneSet, list[Path]]:
    """Planes of every ``images/*.tif`` of ``data`` that has ``truth/<id>/labels.tif``."""
    import tifffile

    from overnight.imaging import find_images, read_stack

    sets, used = [], []
    for path in find_images(data / "images"):
        stack = read_stack(path)
        truth = data / "truth" / stack.image_id / "labels.tif"
        if not truth.is_file():
            logger.warning("%s: no %s; skipped", path.name, truth)
            continue
        labels = tifffile.imread(truth)
        if labels.max() > len(config.compartments):
            raise InvalidImageError(
                str(truth), f"label {labels.max()} but only {len(config.compartments)} compartments"
            )
        sets.append(
            stack_planes(
                np.asarray(stack.data),
                labels.reshape(stack.data.shape[0], *stack.data.shape[2:]),
                config,
                stack.image_id,
            )
        )
        used += [path, truth]
    if not sets:
        raise ConfigError(f"{data}: no images/*.tif with truth/<id>/labels.tif to train on")
    return _merge(sets), used


def class_centres(planes: PlaneSet, n_classes: int) -> list[np.ndarray]:
    """For each class, the indices of the planes holding at least ``MIN_CLASS_PX`` of it."""
    counts = np.stack(
        [np.bincount(lab.ravel(), minlength=n_classes)[:n_classes] for lab in planes.labels]
    )
    return [np.flatnonzero(counts[:, c] >= MIN_CLASS_PX) for c in range(n_classes)]


def _crop(array: np.ndarray, cy: int, cx: int, size: int) -> np.ndarray:
    """A ``size``² window of ``array`` (first two axes) around (cy, cx), inside it if possible."""
    pad = [(0, max(0, size - array.shape[0])), (0, max(0, size - array.shape[1]))] + [(0, 0)] * (
        array.ndim - 2
    )
    if any(p[1] for p in pad[:2]):
        array = np.pad(array, pad, mode="reflect" if min(array.shape[:2]) > 1 else "edge")
    y0 = int(np.clip(cy - size // 2, 0, array.shape[0] - size))
    x0 = int(np.clip(cx - size // 2, 0, array.shape[1] - size))
    return array[y0 : y0 + size, x0 : x0 + size]


def sample_patch(
    rng: np.random.Generator, planes: PlaneSet, centres: list[np.ndarray], config: SkinModelConfig
) -> tuple[np.ndarray, np.ndarray]:
    """One (input ``(P, P, C)``, labels ``(P, P)``) patch, class-centred or anywhere."""
    size = config.train.patch_yx_px
    classes = [c for c, planes_c in enumerate(centres) if len(planes_c)]
    if classes and rng.random() < config.class_centred_fraction:
        c = classes[int(rng.integers(len(classes)))]
        i = int(rng.choice(centres[c]))
        ys, xs = np.nonzero(planes.labels[i] == c)
        k = int(rng.integers(len(ys)))
        jitter = rng.integers(-size // 4, size // 4 + 1, 2)
        cy, cx = int(ys[k] + jitter[0]), int(xs[k] + jitter[1])
    else:
        i = int(rng.integers(len(planes.inputs)))
        cy, cx = (int(rng.integers(s)) for s in planes.labels[i].shape)
    return _crop(planes.inputs[i], cy, cx, size), _crop(planes.labels[i], cy, cx, size)


def augment(
    rng: np.random.Generator, image: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Random 90° rotation, flip, intensity scale (0.8–1.25), offset (±0.05), noise (σ ≤ 0.03)."""
    k = int(rng.integers(4))
    image, labels = np.rot90(image, k, axes=(0, 1)), np.rot90(labels, k)
    if rng.random() < 0.5:
        image, labels = image[:, ::-1], labels[:, ::-1]
    image = image * rng.uniform(0.8, 1.25) + rng.uniform(-0.05, 0.05)
    image = image + rng.normal(0.0, rng.uniform(0.0, 0.03), image.shape)
    return image.astype(np.float32), np.ascontiguousarray(labels)


def batches(rng: np.random.Generator, planes: PlaneSet, config: SkinModelConfig) -> Any:
    """Endless augmented batches ``(x (B, P, P, C), y (B, P, P))``."""
    centres = class_centres(planes, config.n_classes)
    while True:
        pairs = [
            augment(rng, *sample_patch(rng, planes, centres, config))
            for _ in range(config.train.batch_size)
        ]
        yield np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]).astype(np.int32)


def fixed_patches(
    planes: PlaneSet, config: SkinModelConfig, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The validation patches, drawn once with a fixed seed, not augmented."""
    rng = np.random.default_rng(seed + 7919)
    centres = class_centres(planes, config.n_classes)
    pairs = [sample_patch(rng, planes, centres, config) for _ in range(config.train.val_patches)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]).astype(np.int32)


def plane_iou(model: SkinModel, planes: PlaneSet) -> np.ndarray:
    """IoU per class over all ``planes`` at the network's scale (no upsampling)."""
    from overnight.models.tiling import predict_tiled

    config = model.config
    truth, predicted = [], []
    for image, labels in zip(planes.inputs, planes.labels, strict=True):
        (probs,) = predict_tiled(
            model.predict,
            image,
            config.tile_px,
            config.tile_overlap_px,
            config.unet.size_multiple_px,
        )
        truth.append(labels.ravel())
        predicted.append(np.argmax(probs, axis=-1).ravel())
    return iou_per_class(np.concatenate(truth), np.concatenate(predicted), config.n_classes)


def _callbacks(config: SkinModelConfig, start: float) -> list[Any]:
    import keras

    budget_s = config.train.time_budget_s

    class TimeBudget(keras.callbacks.Callback):
        """Stop after the epoch that passes the time budget."""

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if time.perf_counter() - start > budget_s:
                logger.info("time budget of %.0f s reached after epoch %d", budget_s, epoch + 1)
                self.model.stop_training = True

    patience = config.train.patience
    return [
        keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=max(2, patience // 2)),
        TimeBudget(),
    ]


def _configure(epochs: int | None, options: dict[str, Any]) -> SkinModelConfig:
    config = options.pop("config", None) or skin_config(tuple(options.pop("channel_indices", (0,))))
    updates: dict[str, Any] = {
        k: options.pop(k) for k in ("time_budget_s", "steps_per_epoch") if k in options
    }
    if epochs is not None:
        updates["epochs"] = epochs
    return config.model_copy(update={"train": config.train.model_copy(update=updates)})


def fit_skin(
    data: Path | None, out: Path, *, epochs: int | None = None, seed: int = 0, **options: Any
) -> Path:
    """Train the skin model into ``out``; see :func:`overnight.models.skin.train_skin`."""
    import keras

    config = _configure(epochs, options)
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
    keras.utils.set_random_seed(seed)
    model = build_skin_model(config)
    model.network.compile(
        optimizer=keras.optimizers.Adam(config.train.learning_rate),
        loss=class_balanced_loss(weights, config.dice_weight),
        jit_compile=False,
    )
    start = time.perf_counter()
    history = model.network.fit(
        batches(np.random.default_rng(seed), train, config),
        steps_per_epoch=config.train.steps_per_epoch,
        epochs=config.train.epochs,
        validation_data=fixed_patches(val, config, seed),
        callbacks=_callbacks(config, start),
        verbose=2,
        shuffle=False,  # patches are drawn at random already
    )
    seconds = time.perf_counter() - start
    trained = from_network(config, model.network)
    iou = plane_iou(trained, val)
    save_skin_model(trained, out)
    _write_card(trained, out, history.history, seconds, iou, source, digest, train, val)
    return out


def _subset(planes: PlaneSet, indices: np.ndarray) -> PlaneSet:
    keep = sorted(int(i) for i in indices)
    return PlaneSet(*([getattr(planes, f)[i] for i in keep] for f in ("inputs", "labels", "ids")))


def training_planes(
    data: Path | None, config: SkinModelConfig, seed: int, n_series: int, n_val: int, size: int
) -> tuple[PlaneSet, PlaneSet, str, str]:
    """Training and validation planes, a description of their source and its fingerprint.

    From ``data`` when it has ``images/`` (a seeded split of its planes), else synthetic:
    ``n_series`` training and ``n_val`` validation series of ``size``² px.
    """
    if data is not None and (Path(data) / "images").is_dir():
        planes, used = folder_planes(Path(data), config)
        n_val_planes = max(1, round(len(planes.inputs) * config.train.val_fraction))
        order = np.random.default_rng(seed).permutation(len(planes.inputs))
        train = _subset(planes, order[n_val_planes:]) if len(order) > 1 else planes
        return train, _subset(planes, order[:n_val_planes]), str(data), _files_hash(used)
    train = synthetic_planes(seed, n_series, size, config)
    val = synthetic_planes(seed + 1_000_003, n_val, size, config)
    source = (
        f"synthetic: overnight.synth.skin, seed {seed}, {n_series} + {n_val} series of {size}² px"
    )
    return train, val, source, hashlib.sha256(source.encode()).hexdigest()


def _files_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _write_card(
    model: SkinModel,
    out: Path,
    history: dict[str, list[float]],
    seconds: float,
    iou: np.ndarray,
    source: str,
    digest: str,
    train: PlaneSet,
    val: PlaneSet,
) -> None:
    from overnight.models.unet import count_flops

    config = model.config
    names = ("none", *config.compartments)
    metrics = {
        f"val_iou_{n}": round(float(v), 4)
        for n, v in zip(names, iou, strict=True)
        if np.isfinite(v)
    }
    metrics["val_mean_iou_compartments"] = round(float(np.nanmean(iou[1:])), 4)
    metrics["best_val_loss"] = round(float(min(history.get("val_loss", [np.nan]))), 4)
    unet = config.unet
    card = ModelCard(
        name=out.name,
        kind="skin",
        architecture=(
            f"2D U-Net, {unet.n_levels} levels, {unet.base_filters} filters, softmax over "
            f"{unet.out_channels} classes, input mean-pooled {config.downsample}x"
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
        epochs_run=len(history.get("loss", [])),
        training_seconds=round(seconds, 1),
        metrics=metrics,
        flops_per_field=count_flops(unet, (512 // config.downsample, 512 // config.downsample)),
    )
    save_card(card, out)
    logger.info("skin model saved to %s: %s", out, metrics)
