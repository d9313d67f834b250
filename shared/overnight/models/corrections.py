"""Reviewers' corrections as training data: where each came from, and the field it makes.

A correction (corrected cell labels, spots placed in ``YX`` with a multiplicity, cell types)
becomes a :class:`~overnight.models.datasets.TrainingField` (:func:`corrected_field`) with its
provenance (:class:`ReviewSource`) and a content digest (:func:`field_digest`); fine-tuning on
them is :mod:`overnight.models.retrain`'s job.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from overnight.errors import NoImagesError
from overnight.lazy import lazy_module
from overnight.models.datasets import TrainingField

if TYPE_CHECKING:  # the `analysis` extra, imported on first use (overnight.lazy)
    from scipy import ndimage as ndi
else:
    ndi = lazy_module("scipy.ndimage")

#: Smoothing (slices, px, px) of the particle channel before a spot's focal slice is taken.
_Z_SMOOTH = (1.0, 1.5, 1.5)


@dataclass(frozen=True)
class ReviewSource:
    """Where one corrected field came from: dataset, image, annotation version, reviewer."""

    dataset: str
    image_id: str
    version: int
    author: str
    created_at: str
    model_versions: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        """One provenance line for the model card."""
        corrected = ", ".join(sorted(set(self.model_versions.values()))) or "unknown models"
        return (
            f"review: {self.dataset}/{self.image_id} annotation v{self.version} by "
            f"{self.author} at {self.created_at} (corrected the output of {corrected})"
        )


@dataclass(frozen=True)
class CorrectedField:
    """A corrected image as training data, with its provenance and content digest (hex)."""

    field: TrainingField
    source: ReviewSource
    digest: str


def particles_from_spots(
    pnp_zyx: np.ndarray, labels: np.ndarray, spots: np.ndarray
) -> pd.DataFrame:
    """Particle rows ``z, y, x, cell_id`` of corrected spots (a spot of multiplicity m → m rows).

    A correction places spots in ``YX`` only; each spot's slice is where the smoothed particle
    channel is brightest along ``Z`` at the spot's pixel.

    Parameters
    ----------
    pnp_zyx : ndarray of shape (Z, Y, X)
        The particle channel.
    labels : ndarray of shape (Y, X)
        The corrected cell labels (0 = background).
    spots : ndarray of shape (N, 3)
        ``y_px, x_px, multiplicity`` rows.

    Examples
    --------
    >>> volume = np.zeros((3, 8, 8)); volume[2, 4, 4] = 10.0
    >>> labels = np.zeros((8, 8), np.uint32); labels[3:6, 3:6] = 7
    >>> particles_from_spots(volume, labels, np.array([[4.0, 4.0, 2.0]])).to_dict("list")
    {'z': [2.0, 2.0], 'y': [4.0, 4.0], 'x': [4.0, 4.0], 'cell_id': [7, 7]}
    """
    columns = ["z", "y", "x", "cell_id"]
    spots = np.asarray(spots, np.float64).reshape(-1, 3)
    if not len(spots):
        return pd.DataFrame(columns=columns)
    sigma = _Z_SMOOTH if pnp_zyx.shape[0] > 1 else (0.0, *_Z_SMOOTH[1:])
    smoothed = ndi.gaussian_filter(np.asarray(pnp_zyx, np.float32), sigma)
    rows = np.clip(np.rint(spots[:, 0]).astype(np.int64), 0, labels.shape[0] - 1)
    cols = np.clip(np.rint(spots[:, 1]).astype(np.int64), 0, labels.shape[1] - 1)
    z = np.argmax(smoothed[:, rows, cols], axis=0).astype(np.float64)
    repeat = np.maximum(np.rint(spots[:, 2]).astype(np.int64), 1)
    return pd.DataFrame(
        {
            "z": np.repeat(z, repeat),
            "y": np.repeat(spots[:, 0], repeat),
            "x": np.repeat(spots[:, 1], repeat),
            "cell_id": np.repeat(labels[rows, cols].astype(np.int64), repeat),
        },
        columns=columns,
    )


def corrected_field(
    image_id: str,
    image_zcyx: np.ndarray,
    labels: np.ndarray,
    spots: np.ndarray,
    cell_types: dict[int, str],
    pixel_size_um: float | None,
    pnp_channel: int = 1,
) -> TrainingField:
    """A :class:`TrainingField` from one image and its corrections (labels ``YX``, spots)."""
    labels = np.asarray(labels, np.uint32)
    if labels.shape != image_zcyx.shape[-2:]:
        raise NoImagesError(
            f"{image_id}: corrected labels are {labels.shape} but the image is "
            f"{image_zcyx.shape[-2:]} (YX); was the annotation made on another image?"
        )
    ids = np.unique(labels[labels > 0]).astype(np.int64)
    cells = pd.DataFrame({"cell_id": ids, "cell_type": [cell_types.get(int(i), "") for i in ids]})
    channel = min(pnp_channel, image_zcyx.shape[1] - 1)
    pnps = particles_from_spots(image_zcyx[:, channel], labels, spots)
    return TrainingField(image_id, image_zcyx, labels, cells, pnps, pixel_size_um)


def field_digest(labels: np.ndarray, spots: np.ndarray, cell_types: dict[int, str]) -> str:
    """SHA-256 (hex) of a correction's content: labels, spots and types."""
    digest = hashlib.sha256(np.ascontiguousarray(labels, np.uint32).tobytes())
    digest.update(np.ascontiguousarray(spots, np.float64).tobytes())
    digest.update(json.dumps(sorted(cell_types.items())).encode())
    return digest.hexdigest()
