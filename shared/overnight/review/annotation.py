"""A reviewer's corrections of one image, stored as versions next to its result.

Layout under an image's prefix (``results/<dataset_id>/<image_id>``)::

    annotation/v0001/labels.tif        corrected cell labels (YX, 0 = background)
    annotation/v0001/spots.csv         corrected particles: y_px, x_px, multiplicity, cell_id
    annotation/v0001/cells.csv         corrected per-cell table: cell_id, y, x, area_px,
                                       cell_type, pnp_count
    annotation/v0001/annotation.json   who, when, which model versions, file checksums;
                                       written last: a version exists once this file does
    annotation/v0001/.claim            the exclusive claim on the version number
    annotation/latest.json             ``{"version": N}``, a pointer for other readers

The result's own files (``labels.tif``, ``manifest.json``, …) are never written here, and the
annotation keys are three levels below the dataset prefix, where the result listing
(:func:`overnight.review.listing.split_dataset`, :meth:`DatasetResults.published_images`) and
the staging sweep (``.attempts/`` only) do not look: an annotation never makes a result look
incomplete, and a re-analysis (``publish_result(replace=True)``) deletes only the result's
artefacts, so the corrections survive it.

Concurrency: :func:`save_annotation` takes the version it edited (``expected_version``). The
next number is claimed with the store's ``create_exclusive``; of two reviewers saving on top
of the same version exactly one wins, the other gets :class:`AnnotationConflictError`.

The value types (:class:`Annotation`, :class:`AnnotationRecord`, :func:`validate_annotation`,
the limits) live in :mod:`overnight.review.annotation_record` and are re-exported here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import re
import time

import numpy as np
import pandas as pd
import tifffile
from pydantic import ValidationError

from overnight.errors import AnnotationConflictError, ObjectNotFoundError, StorageError
from overnight.results.artefacts import csv_bytes, labels_tiff_bytes
from overnight.results.layout import DatasetResults
from overnight.review.annotation_record import (
    ANNOTATION_SCHEMA_VERSION,
    MAX_AUTHOR_CHARS,
    MAX_NOTE_CHARS,
    MAX_TYPE_CHARS,
    Annotation,
    AnnotationRecord,
    FileEntry,
    model_versions_of,
    now_iso,
    validate_annotation,
)
from overnight.review.stats import corrected_cells_table, spot_cell_ids
from overnight.storage.base import ObjectStore
from overnight.storage.keys import join_key

__all__ = [  # the record type's names too, so that importers of this module keep working
    "ANNOTATION_DIR",
    "ANNOTATION_SCHEMA_VERSION",
    "CELLS_NAME",
    "CLAIM_NAME",
    "LABELS_NAME",
    "LATEST_NAME",
    "MAX_AUTHOR_CHARS",
    "MAX_NOTE_CHARS",
    "MAX_TYPE_CHARS",
    "RECORD_NAME",
    "SPOTS_NAME",
    "SPOT_COLUMNS",
    "STALE_CLAIM_S",
    "Annotation",
    "AnnotationRecord",
    "FileEntry",
    "annotated_images",
    "annotation_prefix",
    "annotation_versions",
    "corrected_cells_table",
    "load_annotation",
    "load_record",
    "model_versions_of",
    "now_iso",
    "save_annotation",
    "spots_table",
    "validate_annotation",
    "version_prefix",
]

logger = logging.getLogger(__name__)

ANNOTATION_DIR = "annotation"
RECORD_NAME = "annotation.json"
LATEST_NAME = "latest.json"
CLAIM_NAME = ".claim"
LABELS_NAME = "labels.tif"
SPOTS_NAME = "spots.csv"
CELLS_NAME = "cells.csv"
#: A claimed version without its ``annotation.json`` after this long (s) was left by a crash.
STALE_CLAIM_S = 300.0
SPOT_COLUMNS = ("y_px", "x_px", "multiplicity", "cell_id")

_VERSION_DIR = re.compile(r"^v(\d{4,})$")


def annotation_prefix(image_prefix: str) -> str:
    """``<image_prefix>/annotation``: where an image's annotation versions lie."""
    return join_key(image_prefix, ANNOTATION_DIR) if image_prefix else ANNOTATION_DIR


def version_prefix(image_prefix: str, version: int) -> str:
    """``<image_prefix>/annotation/v<NNNN>``."""
    return join_key(annotation_prefix(image_prefix), f"v{version:04d}")


def spots_table(labels: np.ndarray, spots: np.ndarray) -> pd.DataFrame:
    """``spots.csv``: one row per spot, ``y_px, x_px, multiplicity, cell_id``."""
    return pd.DataFrame(
        {
            "y_px": np.round(spots[:, 0], 2) if len(spots) else np.zeros(0),
            "x_px": np.round(spots[:, 1], 2) if len(spots) else np.zeros(0),
            "multiplicity": spots[:, 2].astype(np.int64) if len(spots) else np.zeros(0, int),
            "cell_id": spot_cell_ids(labels, spots),
        },
        columns=list(SPOT_COLUMNS),
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def annotation_versions(store: ObjectStore, image_prefix: str) -> list[int]:
    """The image's stored annotation versions, ascending (``[]`` when it has none)."""
    base = annotation_prefix(image_prefix) + "/"
    versions = []
    for info in store.list(base):
        parts = info.key[len(base) :].split("/")
        match = _VERSION_DIR.match(parts[0])
        if match and len(parts) == 2 and parts[1] == RECORD_NAME:
            versions.append(int(match.group(1)))
    return sorted(versions)


def _read_record(store: ObjectStore, image_prefix: str, version: int) -> AnnotationRecord:
    key = join_key(version_prefix(image_prefix, version), RECORD_NAME)
    try:
        return AnnotationRecord.model_validate_json(store.read_bytes(key))
    except ValidationError as err:
        raise StorageError(
            f"{store.url}: {key} is not a valid annotation record ({err.errors()[0]['msg']}); "
            "save a new version from the QC web to supersede it"
        ) from err


def _read_checked(store: ObjectStore, prefix: str, name: str, record: AnnotationRecord) -> bytes:
    key = join_key(prefix, name)
    data = store.read_bytes(key)
    entry = record.files.get(name)
    if entry is None or entry.size != len(data) or entry.sha256 != _sha256(data):
        raise StorageError(
            f"{store.url}: {key} does not match its annotation.json (size/sha256); "
            "save a new version from the QC web to supersede it"
        )
    return data


def load_annotation(
    store: ObjectStore, image_prefix: str, version: int | None = None
) -> Annotation | None:
    """One version of the image's annotation (the latest when ``version`` is None).

    Returns None when the image has no annotation (or not that version). Raises
    :class:`StorageError` when a stored version's files do not match its record.
    """
    if version is None:
        versions = annotation_versions(store, image_prefix)
        if not versions:
            return None
        version = versions[-1]
    prefix = version_prefix(image_prefix, version)
    try:
        record = _read_record(store, image_prefix, version)
        labels_bytes = _read_checked(store, prefix, LABELS_NAME, record)
        spots_bytes = _read_checked(store, prefix, SPOTS_NAME, record)
    except ObjectNotFoundError:
        return None
    table = pd.read_csv(io.BytesIO(spots_bytes))
    spots = table[["y_px", "x_px", "multiplicity"]].to_numpy(np.float64).reshape(-1, 3)
    return Annotation(
        labels=np.asarray(tifffile.imread(io.BytesIO(labels_bytes)), dtype=np.uint32),
        spots=spots,
        cell_types={int(k): v for k, v in record.cell_types.items()},
        author=record.author,
        created_at=record.created_at,
        version=record.version,
        parent_version=record.parent_version,
        model_versions=dict(record.model_versions),
        note=record.note,
        restored_from=record.restored_from,
    )


def load_record(store: ObjectStore, image_prefix: str, version: int) -> AnnotationRecord | None:
    """The ``annotation.json`` of one version (None if absent): the history without arrays."""
    try:
        return _read_record(store, image_prefix, version)
    except ObjectNotFoundError:
        return None


def _claim(store: ObjectStore, image_prefix: str, version: int) -> bool:
    """Claim ``version`` exclusively; a crashed save's stale claim is taken over once."""
    claim_key = join_key(version_prefix(image_prefix, version), CLAIM_NAME)
    token = f"{time.time():.3f}".encode()
    if store.create_exclusive(claim_key, token):
        return True
    record_key = join_key(version_prefix(image_prefix, version), RECORD_NAME)
    try:
        age_s = time.time() - store.stat(claim_key).mtime
    except ObjectNotFoundError:
        age_s = 0.0
    if store.exists(record_key) or age_s < STALE_CLAIM_S:
        return False
    logger.warning(
        "taking over %s, claimed %.0f s ago by a save that never finished", claim_key, age_s
    )
    store.delete(claim_key)
    return store.create_exclusive(claim_key, token)


def save_annotation(
    store: ObjectStore,
    image_prefix: str,
    annotation: Annotation,
    *,
    expected_version: int | None,
) -> Annotation:
    """Store ``annotation`` as the image's next version; return it with that version.

    Parameters
    ----------
    store : ObjectStore
        The results' store.
    image_prefix : str
        The image's result prefix (:meth:`DatasetResults.image_prefix`).
    annotation : Annotation
        The corrections; its ``version`` and ``parent_version`` are ignored and assigned here,
        an empty ``created_at`` becomes now.
    expected_version : int or None
        The version the corrections were made on: must be the latest stored one (None: the
        image must have no annotation yet).

    Raises
    ------
    AnnotationConflictError
        When another version was saved since ``expected_version`` (answer 409: reload).
    AnnotationError
        When the annotation is invalid (shapes, unknown cell ids in ``cell_types``, …).
    """
    validate_annotation(annotation)
    versions = annotation_versions(store, image_prefix)
    latest = versions[-1] if versions else None
    if latest != expected_version:
        raise AnnotationConflictError(
            f"{annotation_prefix(image_prefix)}: the corrections were made on version "
            f"{expected_version or 'none'} but version {latest or 'none'} is the latest; "
            "reload the image to see the other reviewer's corrections, then edit again"
        )
    version = (expected_version or 0) + 1
    if not _claim(store, image_prefix, version):
        raise AnnotationConflictError(
            f"{version_prefix(image_prefix, version)}: another reviewer is saving this version "
            "right now; reload the image, then edit again"
        )
    saved = dataclasses.replace(
        annotation,
        labels=np.asarray(annotation.labels, dtype=np.uint32),
        spots=np.asarray(annotation.spots, dtype=np.float64).reshape(-1, 3),
        version=version,
        parent_version=expected_version,
        created_at=annotation.created_at or now_iso(),
    )
    files = {
        LABELS_NAME: labels_tiff_bytes(saved.labels),
        SPOTS_NAME: csv_bytes(spots_table(saved.labels, saved.spots)),
        CELLS_NAME: csv_bytes(corrected_cells_table(saved.labels, saved.spots, saved.cell_types)),
    }
    prefix = version_prefix(image_prefix, version)
    for name, data in files.items():
        store.write_bytes(join_key(prefix, name), data)
    record = AnnotationRecord(
        version=version,
        parent_version=expected_version,
        author=saved.author,
        created_at=saved.created_at,
        model_versions=saved.model_versions,
        note=saved.note,
        restored_from=saved.restored_from,
        cell_types=saved.cell_types,
        cell_count=len(saved.cell_ids),
        particle_count=saved.particle_count,
        files={n: FileEntry(size=len(d), sha256=_sha256(d)) for n, d in files.items()},
    )
    body = record.model_dump_json(indent=2).encode("utf-8")
    store.write_bytes(join_key(prefix, RECORD_NAME), body, content_type="application/json")
    latest_body = json.dumps({"version": version, "created_at": saved.created_at}).encode()
    store.write_bytes(
        join_key(annotation_prefix(image_prefix), LATEST_NAME),
        latest_body,
        content_type="application/json",
    )
    logger.info("annotation v%d of %s saved by %s", version, image_prefix, saved.author)
    return saved


def annotated_images(results: DatasetResults) -> list[str]:
    """Ids of the dataset's images that hold at least one annotation version, sorted."""
    base = f"{results.prefix}/" if results.prefix else ""
    found = set()
    for info in results.store.list(base):
        parts = info.key[len(base) :].split("/")
        if (
            len(parts) == 4
            and parts[1] == ANNOTATION_DIR
            and _VERSION_DIR.match(parts[2])
            and parts[3] == RECORD_NAME
            and not parts[0].startswith(".")
        ):
            found.add(parts[0])
    return sorted(found)
