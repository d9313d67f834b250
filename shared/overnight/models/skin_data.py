"""Training data of the skin-compartment model: planes, class-balanced patches, augmentation.

Every plane of a training stack is turned into the network's input once
(:func:`overnight.models.skin.network_input`: per-stack normalisation, pooling and, for a
``depth_input`` model, the plane's depth as a constant last channel) and kept in memory at
the network's scale with its labels (:class:`PlaneSet`). :func:`training_pairs` hands them to
the shared loop of :mod:`overnight.models.training` so that every compartment is drawn as
often; :func:`skin_augmentation` gives the loop per-channel intensity ranges, so that the
depth channel is jittered as a depth (an offset of a few µm and a scale), not as an intensity.

Sources: a folder in the synthetic layout (``images/<id>.tif`` ``ZCYX`` with its sidecar
``images/<id>.json`` holding ``depths_um`` + ``truth/<id>/labels.tif`` ``ZYX``), or series
drawn with :func:`overnight.synth.skin.draw_skin_series` in ``config.train_looks`` in turn.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from overnight.errors import ConfigError, InvalidImageError
from overnight.models.datasets import dataset_hash
from overnight.models.skin import (
    SkinModel,
    SkinModelConfig,
    iou_per_class,
    network_input,
)
from overnight.models.tiling import predict_tiled
from overnight.models.training import Augmentation, TrainingPairs

logger = logging.getLogger(__name__)

#: Defaults of the synthetic training set: series, validation series and plane side (px).
N_SERIES = 64
N_VAL_SERIES = 6
SYNTH_SIZE_PX = 384
#: Fewest pixels (network scale) of a class in a plane for the plane to centre patches on it.
MIN_CLASS_PX = 16
#: Patch centres kept per plane and compartment (see :func:`training_pairs`).
CENTRES_PER_PLANE = 64
#: Where the generator ranges of a synthetically trained model are written.
LOOK_FILE = "training_look.json"
#: Intensity augmentation of skin patches, on top of the generator's domain randomisation:
#: after per-stack normalisation a plane of another microscope differs by gain, offset,
#: a non-linear response, a residual tilt and noise.
SKIN_AUGMENTATION = Augmentation(
    scale=(0.6, 1.6), offset=(-0.15, 0.15), noise_sd=(0.0, 0.08), gamma=(0.6, 1.6), tilt=0.3
)


@dataclass(frozen=True)
class PlaneSet:
    """Network inputs ``(y, x, C)`` float32 and labels ``(y, x)`` uint8 at the network's scale."""

    inputs: list[np.ndarray]
    labels: list[np.ndarray]
    ids: list[str]


def _per_channel(ranges: list[tuple[float, float]]) -> Any:
    """``(lows, highs)`` arrays of shape ``(C,)``: one draw per channel, broadcast over ``YXC``.

    The shared loop draws ``rng.uniform(*range)`` and applies it elementwise to a ``YXC``
    patch, so arrays of one bound per channel give each channel its own range.
    """
    return (
        np.array([r[0] for r in ranges], np.float64),
        np.array([r[1] for r in ranges], np.float64),
    )


def skin_augmentation(config: SkinModelConfig) -> Augmentation:
    """The loop's intensity augmentation: :data:`SKIN_AUGMENTATION` on the image channels.

    With ``config.depth_input`` the depth channel (``depth_um / depth_scale_um``) gets no
    gamma and no noise, a scale of ``depth_jitter_scale`` and an offset of
    ± ``depth_jitter_um`` (a soft prior: the layer depths of §2 vary across a plane and
    between samples); the loop's tilt multiplies it too (up to ± ``SKIN_AUGMENTATION.tilt``
    across a patch: a plane that is not parallel to the layers).
    """
    if not config.depth_input:
        return SKIN_AUGMENTATION
    base = SKIN_AUGMENTATION
    n_image = len(config.channel_indices)
    jitter = config.depth_jitter_um / config.depth_scale_um
    assert base.gamma is not None
    return Augmentation(
        scale=_per_channel([base.scale] * n_image + [config.depth_jitter_scale]),
        offset=_per_channel([base.offset] * n_image + [(-jitter, jitter)]),
        noise_sd=_per_channel([base.noise_sd] * n_image + [(0.0, 0.0)]),
        gamma=_per_channel([base.gamma] * n_image + [(1.0, 1.0)]),
        tilt=base.tilt,
    )


def stack_planes(
    stack: np.ndarray,
    labels: np.ndarray,
    config: SkinModelConfig,
    image_id: str,
    depths_um: Any = None,
) -> PlaneSet:
    """The planes of one ``ZCYX`` stack and its ``ZYX`` labels, at the network's scale.

    ``depths_um`` (length Z, µm below the surface) is needed by a ``depth_input`` model.
    """
    if labels.shape != (stack.shape[0], *stack.shape[2:]):
        raise ConfigError(f"{image_id}: labels {labels.shape} do not match the stack {stack.shape}")
    inputs = network_input(stack, config, depths_um)
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
    """Planes of ``n_series`` synthetic regions drawn from ``seed``, in ``config.train_looks``.

    Each region is drawn at a random size between 0.75 and 1.33 × ``size_px`` (so that the
    field holds more or fewer structures) with its look's number of depths.
    """
    from overnight.synth.skin import draw_skin_series

    rng = np.random.default_rng(seed)
    sets = []
    for i in range(n_series):
        side = int(rng.integers(int(0.75 * size_px), int(1.33 * size_px) + 1)) // 8 * 8
        series = draw_skin_series(
            rng,
            size=max(side, 64),
            n_timepoints=6,
            compartments=config.compartments,
            look=config.train_looks[i % len(config.train_looks)],
        )
        index = int(rng.integers(series.n_timepoints))
        sets.append(
            stack_planes(
                series.stack(index),
                series.labels(index),
                config,
                f"synth{seed}-{i}",
                series.depths_um,
            )
        )
    return _merge(sets)


def sidecar_depths(path: Path) -> list[float] | None:
    """``depths_um`` of an image's sidecar (``<stem>.json`` beside it), or None."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        depths = json.loads(sidecar.read_text()).get("depths_um")
    except (json.JSONDecodeError, AttributeError) as err:
        raise InvalidImageError(str(sidecar), f"not a JSON object: {err}") from err
    return [float(d) for d in depths] if depths is not None else None


def folder_planes(data: Path, config: SkinModelConfig) -> tuple[PlaneSet, list[Path]]:
    """Planes of every ``images/*.tif`` of ``data`` that has ``truth/<id>/labels.tif``.

    A ``depth_input`` model takes each plane's depth from the image's sidecar ``depths_um``.
    """
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
                sidecar_depths(path),
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


def training_pairs(planes: PlaneSet, n_classes: int, seed: int) -> TrainingPairs:
    """``planes`` for the shared loop, balanced so that every compartment is drawn as often.

    The loop picks an image uniformly, then (``feature_fraction`` of the time) one of its
    feature positions. So each compartment becomes entries of its own: every plane holding
    at least :data:`MIN_CLASS_PX` of it, with :data:`CENTRES_PER_PLANE` of its pixels as
    features, repeated so that each compartment has about as many entries as the most
    widespread one (the repeats share the arrays). Class 0 ("none") is not a target.
    """
    holding = class_centres(planes, n_classes)
    most = max((len(p) for p in holding[1:]), default=0)
    rng = np.random.default_rng(seed)
    entries: list[tuple[int, np.ndarray]] = []
    for c in range(1, n_classes):
        repeats = max(1, round(most / len(holding[c]))) if len(holding[c]) else 0
        for i in holding[c]:
            ys, xs = np.nonzero(planes.labels[i] == c)
            pick = rng.integers(len(ys), size=CENTRES_PER_PLANE)
            centres = np.stack([ys[pick], xs[pick]], axis=1)
            entries += [(int(i), centres)] * repeats
    if not entries:  # no compartment anywhere: plain random patches
        entries = [(i, np.zeros((0, 2), np.intp)) for i in range(len(planes.inputs))]
    multi = planes.inputs[0].shape[-1] > 1
    inputs = [p if multi else p[..., 0] for p in planes.inputs]
    targets = [lab.astype(np.int32) for lab in planes.labels]
    return TrainingPairs(
        [inputs[i] for i, _ in entries],
        [targets[i] for i, _ in entries],
        [centres for _, centres in entries],
        channels_last=multi,
    )


def plane_iou(model: SkinModel, planes: PlaneSet) -> np.ndarray:
    """IoU per class over all ``planes`` at the network's scale (no upsampling)."""
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


def _subset(planes: PlaneSet, indices: np.ndarray) -> PlaneSet:
    keep = sorted(int(i) for i in indices)
    return PlaneSet(*([getattr(planes, f)[i] for i in keep] for f in ("inputs", "labels", "ids")))


def training_planes(
    data: Path | None, config: SkinModelConfig, seed: int, n_series: int, n_val: int, size: int
) -> tuple[PlaneSet, PlaneSet, str, str]:
    """Training and validation planes, a description of their source and its fingerprint.

    From ``data`` when it has ``images/`` (a seeded split of its planes), else synthetic:
    ``n_series`` training and ``n_val`` validation series of about ``size``² px.
    """
    if data is not None and (Path(data) / "images").is_dir():
        planes, used = folder_planes(Path(data), config)
        n_val_planes = max(1, round(len(planes.inputs) * config.train.val_fraction))
        order = np.random.default_rng(seed).permutation(len(planes.inputs))
        train = _subset(planes, order[n_val_planes:]) if len(order) > 1 else planes
        return train, _subset(planes, order[:n_val_planes]), str(data), dataset_hash(used)
    train = synthetic_planes(seed, n_series, size, config)
    val = synthetic_planes(seed + 1_000_003, n_val, size, config)
    source = (
        f"synthetic: overnight.synth.skin, looks {', '.join(config.train_looks)} ({LOOK_FILE}), "
        f"seed {seed}, {n_series} + {n_val} series of ~{size}² px"
    )
    return train, val, source, hashlib.sha256(source.encode()).hexdigest()
