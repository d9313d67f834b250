"""Reading training data: the pipeline's output format, or an ``images/`` + ``masks/`` set.

Two layouts are accepted (see ``overnight train --help``):

- output format (what ``overnight synth cytometry`` writes, and what a lab's corrected
  results look like): ``images/<id>.tif`` plus ``truth/<id>/labels.tif``, ``cells.csv`` and
  ``pnps.csv`` (``cells.csv``/``pnps.csv`` optional for the cell model);
- instance masks (e.g. the 2018 Data Science Bowl): ``images/<id>.tif`` plus
  ``masks/<id>.tif``, single channel 2D, no cell types, no particles.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from overnight.errors import NoImagesError
from overnight.imaging.files import find_images, image_id_from_name
from overnight.imaging.reader import read_stack

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingField:
    """One annotated field of view.

    ``image`` is ``ZCYX`` (as read); ``labels`` is ``YX`` instance labels (0 = background);
    ``cells`` has ``cell_id, cell_type, ...`` and ``pnps`` has ``z, y, x, cell_id, ...`` in
    pixels/slices, or ``None`` when the layout has none.
    """

    image_id: str
    image: np.ndarray
    labels: np.ndarray
    cells: pd.DataFrame | None
    pnps: pd.DataFrame | None
    pixel_size_um: float | None


def dataset_layout(data_dir: Path) -> str:
    """``"output"`` (``truth/``) or ``"masks"`` (``masks/``); NoImagesError when neither."""
    if not (data_dir / "images").is_dir():
        raise NoImagesError(
            f"{data_dir}: no images/ folder; expected images/ with truth/ or masks/"
        )
    if (data_dir / "truth").is_dir():
        return "output"
    if (data_dir / "masks").is_dir():
        return "masks"
    raise NoImagesError(f"{data_dir}: images/ has no annotations beside it (truth/ or masks/)")


def annotated_images(data_dir: Path) -> list[Path]:
    """The images of ``data_dir/images`` that have annotations, sorted by name."""
    layout = dataset_layout(data_dir)
    found = []
    for path in find_images(data_dir / "images"):
        image_id = image_id_from_name(path.name)
        if layout == "output":
            has_truth = (data_dir / "truth" / image_id / "labels.tif").is_file()
        else:
            has_truth = _mask_path(data_dir, path) is not None
        if has_truth:
            found.append(path)
        else:
            logger.warning("no annotation for %s; skipped", path.name)
    if not found:
        raise NoImagesError(f"{data_dir}: no annotated images")
    return found


def _mask_path(data_dir: Path, image_path: Path) -> Path | None:
    candidate = data_dir / "masks" / image_path.name
    if candidate.is_file():
        return candidate
    matches = [p for p in (data_dir / "masks").glob(image_id_from_name(image_path.name) + ".*")]
    return matches[0] if matches else None


def read_field(data_dir: Path, image_path: Path) -> TrainingField:
    """One annotated field of ``data_dir`` (either layout)."""
    image_id = image_id_from_name(image_path.name)
    stack = read_stack(image_path, image_id=image_id, memmap=False)
    image = np.asarray(stack.data)
    if dataset_layout(data_dir) == "output":
        truth = data_dir / "truth" / image_id
        labels = tifffile.imread(truth / "labels.tif")
        cells = pd.read_csv(truth / "cells.csv") if (truth / "cells.csv").is_file() else None
        pnps = pd.read_csv(truth / "pnps.csv") if (truth / "pnps.csv").is_file() else None
    else:
        mask_path = _mask_path(data_dir, image_path)
        assert mask_path is not None  # annotated_images() checked it
        labels, cells, pnps = tifffile.imread(mask_path), None, None
    labels = np.squeeze(labels).astype(np.uint32)
    if labels.shape != image.shape[-2:]:
        raise NoImagesError(
            f"{image_path.name}: labels are {labels.shape} but the image is {image.shape[-2:]} (YX)"
        )
    return TrainingField(image_id, image, labels, cells, pnps, stack.pixel_size_um)


def read_dataset(data_dir: Path, paths: Iterable[Path] | None = None) -> list[TrainingField]:
    """Every annotated field of ``data_dir`` (or only ``paths``)."""
    chosen = list(paths) if paths is not None else annotated_images(data_dir)
    return [read_field(data_dir, p) for p in chosen]


def dataset_hash(paths: Iterable[Path]) -> str:
    """SHA-256 over the names and bytes of ``paths`` (sorted): the training-data fingerprint."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def split_paths(paths: list[Path], val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """A fixed (seeded) train/validation split of ``paths``; at least one image each."""
    if len(paths) < 2:
        return list(paths), list(paths)
    order = np.random.default_rng(seed).permutation(len(paths))
    n_val = min(len(paths) - 1, max(1, round(len(paths) * val_fraction)))
    val = sorted(paths[i] for i in order[:n_val])
    train = sorted(paths[i] for i in order[n_val:])
    return train, val


@dataclass(frozen=True)
class TrainingSplit:
    """The annotated images of a training folder, split into training and validation fields."""

    data_dir: Path
    paths: list[Path]
    train: list[TrainingField]
    val: list[TrainingField]
    val_paths: list[Path]

    @property
    def n_train(self) -> int:
        """Training images."""
        return len(self.train)


def load_split(
    data_dir: Path, val_fraction: float, split_seed: int, max_images: int | None = None
) -> TrainingSplit:
    """Read the (first ``max_images``) annotated images of ``data_dir``, split by ``split_seed``."""
    paths = annotated_images(data_dir)[:max_images]
    train_paths, val_paths = split_paths(paths, val_fraction, split_seed)
    return TrainingSplit(
        data_dir,
        paths,
        read_dataset(data_dir, train_paths),
        read_dataset(data_dir, val_paths),
        val_paths,
    )
