"""The corrected numbers the pages show beside the model's, and the versions' history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from overnight.review.annotation import (
    CELLS_NAME,
    LABELS_NAME,
    SPOTS_NAME,
    AnnotationRecord,
    annotation_versions,
    load_record,
    version_prefix,
)
from overnight.review.history import AnnotationChanges, Snapshot
from overnight.review.overlay import read_table
from overnight.review.stats import corrected_summary
from overnight.storage.base import ObjectStore
from overnight.storage.keys import join_key


@dataclass(frozen=True)
class Corrected:
    """The latest annotation of an image: its record, tables and summary (``summary.csv`` keys)."""

    record: AnnotationRecord
    cells: pd.DataFrame
    summary: dict[str, float]

    @property
    def version(self) -> int:
        """The annotation version the numbers come from."""
        return self.record.version

    def pnps_of_type(self, type_name: str) -> float:
        """Particles on cells of ``type_name`` in the corrections."""
        return self.summary.get(f"pnps_{type_name}", 0.0)

    def cell_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(cell type, PNP count) per corrected cell, as the statistics page pools them."""
        types = self.cells["cell_type"].fillna("").astype(str).to_numpy()
        return types, self.cells["pnp_count"].to_numpy(np.int64)


def correction_history(store: ObjectStore, image_prefix: str) -> list[AnnotationRecord]:
    """Every stored version's record, newest first (who, when, note, counts)."""
    versions = annotation_versions(store, image_prefix)
    records = (load_record(store, image_prefix, version) for version in versions)
    return [record for record in records if record is not None][::-1]


def read_corrected(store: ObjectStore, image_prefix: str) -> Corrected | None:
    """The image's latest corrections, or None when it has none."""
    versions = annotation_versions(store, image_prefix)
    if not versions:
        return None
    record = load_record(store, image_prefix, versions[-1])
    if record is None:
        return None
    prefix = version_prefix(image_prefix, record.version)
    cells = read_table(store.read_bytes(join_key(prefix, CELLS_NAME)))
    spots = read_table(store.read_bytes(join_key(prefix, SPOTS_NAME)))
    return Corrected(record, cells, corrected_summary(cells, spots))


def history_key(records: list[AnnotationRecord]) -> tuple[tuple[int, str, str], ...]:
    """What identifies a history's content: each version with its labels' and spots' sha256."""
    return tuple(
        (
            r.version,
            r.files[LABELS_NAME].sha256 if LABELS_NAME in r.files else "",
            r.files[SPOTS_NAME].sha256 if SPOTS_NAME in r.files else "",
        )
        for r in records
    )


def version_list(
    records: list[AnnotationRecord], changes: dict[int, AnnotationChanges], origin: Snapshot
) -> dict[str, Any]:
    """The editor's version list: the model's result, then every version oldest first.

    Each version holds its record (who, when, note, counts, ``restored_from``), ``changes``
    from its parent, their one-line ``summary`` and ``changed_cells`` (its own ids of the
    cells it added, merged, split, reshaped or retyped).
    """
    versions = []
    for record in sorted(records, key=lambda r: r.version):
        found = changes.get(record.version)
        versions.append(
            {
                **record.model_dump(mode="json", exclude={"files", "cell_types"}),
                "changes": found.model_dump(mode="json") if found else None,
                "summary": found.summary() if found else "files unreadable",
                "changed_cells": list(found.changed_cells) if found else [],
            }
        )
    particles = int(origin.spots[:, 2].sum()) if len(origin.spots) else 0
    cells = int(np.count_nonzero(np.unique(origin.labels)))
    return {
        "latest": versions[-1]["version"] if versions else None,
        "model": {"cell_count": cells, "particle_count": particles},
        "versions": versions,
    }
