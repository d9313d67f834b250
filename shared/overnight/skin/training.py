"""Skin-model training data, re-exported for the skin package: planes, patches and the trainer.

The trainer itself lives in the models layer, :mod:`overnight.models.skin` (its data in
:mod:`overnight.models.skin_data`), and runs the
shared loop of :mod:`overnight.models.training` (checkpoints, mixed precision, ``init``
weights); this module only points there (one way: ``skin`` → ``models``, never back) and
keeps :func:`sample_patch`, which draws one class-centred patch the way the old loop did, for
looking at what the network is shown.
"""

from __future__ import annotations

import numpy as np

from overnight.models.skin import SkinModelConfig, train_skin
from overnight.models.skin_data import (
    MIN_CLASS_PX,
    PlaneSet,
    class_centres,
    folder_planes,
    plane_iou,
    stack_planes,
    synthetic_planes,
    training_pairs,
    training_planes,
)

__all__ = [
    "MIN_CLASS_PX",
    "PlaneSet",
    "class_centres",
    "folder_planes",
    "plane_iou",
    "sample_patch",
    "stack_planes",
    "synthetic_planes",
    "train_skin",
    "training_pairs",
    "training_planes",
]


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
    """One (input ``(P, P, C)``, labels ``(P, P)``) patch, centred on a uniformly drawn class.

    ``class_centred_fraction`` of the draws pick a class uniformly among those present
    (``centres`` from :func:`class_centres`), then a plane holding it and one of its pixels;
    the rest pick any plane and pixel.
    """
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
