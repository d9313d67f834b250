"""One version of a reviewer's corrections of an image as a value: its type, record and checks.

:class:`Annotation` holds the arrays and who/when/why; :class:`AnnotationRecord` is what
``annotation.json`` stores of it (everything but the arrays, plus file checksums);
:func:`validate_annotation` says what makes one invalid. Where and how versions are stored is
:mod:`overnight.review.annotation`, which re-exports these names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from overnight.errors import AnnotationError

ANNOTATION_SCHEMA_VERSION = 1
#: Longest author name and note kept (characters); longer ones are refused.
MAX_AUTHOR_CHARS = 100
MAX_NOTE_CHARS = 2000
#: Longest cell type name (characters).
MAX_TYPE_CHARS = 64


@dataclass(frozen=True)
class Annotation:
    """One version of a reviewer's corrections of one image.

    Attributes
    ----------
    labels : ndarray of shape (Y, X), uint32
        Corrected cell label image, 0 = background.
    spots : ndarray of shape (N, 3), float64
        Corrected particles: ``y_px``, ``x_px`` (pixel centres, the image's YX axes) and
        ``multiplicity`` (particles in the spot, ≥ 1).
    cell_types : dict of int to str
        Cell id → type name, for the cells whose type the annotation states.
    author : str
        Who made the corrections (the QC reviewer's name).
    created_at : str
        When, as a UTC ISO 8601 string (``2026-12-07T05:40:00+00:00``).
    version : int
        1, 2, …: assigned by :func:`save_annotation`.
    parent_version : int or None
        The version these corrections were made on (None for the first).
    model_versions : dict of str to str
        Which model versions made the corrected result (``segment_cells.model`` → version),
        from its ``result.json``'s ``versions`` (see :func:`model_versions_of`).
    note : str
        Free text by the author.
    restored_from : int or None
        The earlier version this one restores (0: the model's result), None for corrections.
    """

    labels: np.ndarray
    spots: np.ndarray
    cell_types: dict[int, str]
    author: str
    created_at: str
    version: int
    parent_version: int | None
    model_versions: dict[str, str] = field(default_factory=dict)
    note: str = ""
    restored_from: int | None = None

    @property
    def cell_ids(self) -> np.ndarray:
        """The ids of the annotated cells, ascending (int64)."""
        ids = np.unique(self.labels)
        return ids[ids > 0].astype(np.int64)

    @property
    def particle_count(self) -> int:
        """Particles in the image: the spots' multiplicities summed."""
        return int(self.spots[:, 2].sum()) if len(self.spots) else 0


class FileEntry(BaseModel):
    """One stored file of a version: size (bytes) and sha256."""

    model_config = ConfigDict(frozen=True)

    size: int
    sha256: str


class AnnotationRecord(BaseModel):
    """``annotation.json``: everything about a version except its arrays."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = ANNOTATION_SCHEMA_VERSION
    version: int = Field(..., ge=1)
    parent_version: int | None = None
    author: str = Field(..., min_length=1, max_length=MAX_AUTHOR_CHARS)
    created_at: str
    model_versions: dict[str, str] = {}
    note: str = Field("", max_length=MAX_NOTE_CHARS)
    restored_from: int | None = Field(None, ge=0)
    cell_types: dict[int, str] = {}
    cell_count: int = 0
    particle_count: int = 0
    files: dict[str, FileEntry] = {}


def model_versions_of(versions: Mapping[str, str]) -> dict[str, str]:
    """The model entries (``<step>.model``) of a result's ``versions`` mapping."""
    return {name: str(value) for name, value in versions.items() if name.endswith(".model")}


def now_iso() -> str:
    """The current UTC time to the second, ISO 8601 (what ``created_at`` holds)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def validate_annotation(annotation: Annotation) -> None:
    """Check shapes, dtypes and references; :class:`AnnotationError` names the problem."""
    labels, spots = annotation.labels, annotation.spots
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise AnnotationError(
            f"labels should be a YX integer image but are {labels.dtype} of shape {labels.shape}"
        )
    if labels.size and labels.min() < 0:
        raise AnnotationError("labels hold negative ids; cell ids are ≥ 1, 0 = background")
    if spots.ndim != 2 or spots.shape[1] != 3 or not np.all(np.isfinite(spots)):
        raise AnnotationError(
            f"spots should be finite (N, 3) rows of y_px, x_px, multiplicity but are {spots.shape}"
        )
    height, width = labels.shape
    if len(spots):
        y, x, multiplicity = spots[:, 0], spots[:, 1], spots[:, 2]
        # a pixel covers ±0.5 px around its centre; sub-pixel fits reach into the border ones
        if np.any((y < -0.5) | (y > height - 0.5) | (x < -0.5) | (x > width - 0.5)):
            raise AnnotationError(f"a spot lies outside the {height}×{width} px image")
        if np.any((multiplicity < 1) | (multiplicity != np.round(multiplicity))):
            raise AnnotationError("spot multiplicities should be whole numbers ≥ 1")
    present = set(annotation.cell_ids.tolist())
    for cell_id, name in annotation.cell_types.items():
        if cell_id not in present:
            raise AnnotationError(f"cell type given for cell {cell_id}, which is not in labels")
        if not 0 < len(name) <= MAX_TYPE_CHARS:
            raise AnnotationError(f"cell type name {name!r} should be 1–{MAX_TYPE_CHARS} chars")
    if not 0 < len(annotation.author) <= MAX_AUTHOR_CHARS:
        raise AnnotationError(f"author should be 1–{MAX_AUTHOR_CHARS} characters")
    if len(annotation.note) > MAX_NOTE_CHARS:
        raise AnnotationError(f"note is longer than {MAX_NOTE_CHARS} characters")
