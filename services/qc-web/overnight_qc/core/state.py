"""The service's state: one catalog of the store, caches of pictures and tables, the ingest API."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from overnight.results.layout import DatasetResults
from overnight.review.annotation import annotated_images
from overnight.review.catalog import Catalog, Layout
from overnight.review.datasets import (
    DatasetRecord,
    DatasetSummary,
    Failure,
    Progress,
    read_dataset_record,
    read_failures,
    storage_progress,
    summarise_dataset,
)
from overnight.review.exports import cell_counts
from overnight.review.history import AnnotationChanges
from overnight.review.index import DatasetIndex, ImageRow
from overnight.review.overlay import labels_png, projection_png, read_labels, thumbnail_jpeg
from overnight.storage import ObjectStore, open_store
from overnight_qc.core.cache import LruCache
from overnight_qc.core.config import QcSettings
from overnight_qc.core.corrections import Corrected, read_corrected
from overnight_qc.core.image_view import ImageView, build_view
from overnight_qc.core.ingest import fetch_status
from overnight_qc.core.sources import read_source, scratch_dir

logger = logging.getLogger(__name__)

#: After the ingest API failed to answer, progress comes from storage for this long (s).
INGEST_RETRY_AFTER_S = 15.0
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class DatasetState:
    """A dataset as its page needs it: index, dataset.json, failures and progress."""

    index: DatasetIndex
    record: DatasetRecord | None
    failures: tuple[Failure, ...]
    progress: Progress
    summary: DatasetSummary


def dataset_id_for_folder(folder: Path) -> str:
    """A valid dataset id from an output folder's name (``my run`` → ``my_run``)."""
    name = _UNSAFE_ID_CHARS.sub("_", folder.resolve().name).lstrip(".") or "dataset"
    return name[:200]


class QcState:
    """What every request shares; built once by :func:`overnight_qc.app.create_app`."""

    def __init__(self, settings: QcSettings, store: ObjectStore | None = None) -> None:
        self.settings = settings
        if settings.qc_dataset_dir is not None:
            folder = Path(settings.qc_dataset_dir)
            self.store = store or open_store(str(folder))
            layout = Layout(single_id=dataset_id_for_folder(folder))
        else:
            self.store = store or open_store(settings.storage_url, settings)
            layout = Layout(root=settings.qc_results_root)
        self.catalog = Catalog(self.store, layout, ttl_s=settings.qc_listing_ttl_s)
        self.scratch = scratch_dir()
        self.views: LruCache[ImageView] = LruCache(64)
        self.pictures: LruCache[bytes] = LruCache(512)
        self.counts: LruCache[tuple[np.ndarray, np.ndarray]] = LruCache(20000)
        #: Each image history's changes per version (versions never change once saved).
        self.changes: LruCache[dict[int, AnnotationChanges]] = LruCache(256)
        self._ingest_down_until = 0.0
        self._annotated: dict[str, tuple[float, frozenset[str]]] = {}

    @property
    def token(self) -> str | None:
        """The API token, or None (then the service is read-only)."""
        secret = self.settings.api_token
        return secret.get_secret_value() if secret and secret.get_secret_value() else None

    # -- datasets ----------------------------------------------------------------------------

    def dataset(self, dataset_id: str, with_ingest: bool = True) -> DatasetState:
        """Index, failures and progress of one dataset (progress from the ingest API if set)."""
        index = self.catalog.index(dataset_id)
        listing = self.catalog.listing(dataset_id)
        record = read_dataset_record(self.store, listing)
        failures = tuple(read_failures(self.store, listing, index))
        progress = storage_progress(index, list(failures), record.n_images if record else None)
        if with_ingest and self.settings.ingest_url and time.monotonic() >= self._ingest_down_until:
            status = fetch_status(
                self.settings.ingest_url, dataset_id, self.settings.qc_ingest_timeout_s
            )
            if status is None:  # do not wait for a dead API on every dataset of every page
                self._ingest_down_until = time.monotonic() + INGEST_RETRY_AFTER_S
            else:
                progress = status.progress
                known = {f.image_id for f in failures}
                failures += tuple(
                    f
                    for f in status.failures
                    if f.image_id not in known and f.image_id not in index.by_id
                )
        return DatasetState(
            index, record, failures, progress, summarise_dataset(index, record, progress)
        )

    # -- corrections -------------------------------------------------------------------------

    def annotated(self, dataset_id: str) -> frozenset[str]:
        """Ids of the dataset's corrected images (a listing at most ``qc_listing_ttl_s`` old)."""
        now = time.monotonic()
        cached = self._annotated.get(dataset_id)
        if cached is not None and now - cached[0] < self.settings.qc_listing_ttl_s:
            return cached[1]
        prefix = self.catalog.layout.prefix_of(dataset_id)
        found = frozenset(annotated_images(DatasetResults(self.store, prefix)))
        self._annotated[dataset_id] = (now, found)
        return found

    def forget_annotated(self, dataset_id: str) -> None:
        """Drop the cached list of corrected images (after a save)."""
        self._annotated.pop(dataset_id, None)

    def corrected_rows(self, dataset_id: str, rows: Iterable[ImageRow]) -> dict[str, Corrected]:
        """The latest corrections of those of ``rows`` that have any, by image id."""
        annotated = self.annotated(dataset_id)
        found = {}
        for row in rows:
            if row.image_id in annotated:
                corrected = read_corrected(self.store, row.prefix)
                if corrected is not None:
                    found[row.image_id] = corrected
        return found

    # -- images ------------------------------------------------------------------------------

    def view(self, dataset_id: str, row: ImageRow) -> ImageView:
        """The image page's content for ``row`` (cached until its files change)."""
        type_names = self.catalog.index(dataset_id).type_names
        key = (row.prefix, row.signature[:2])
        return self.views.get(key, lambda: build_view(self.store, row, type_names, self.scratch))

    def thumbnail(self, row: ImageRow) -> bytes:
        """A small JPEG of the image's QC picture."""
        key = ("thumb", row.prefix, row.signature[:2])
        return self.pictures.get(
            key, lambda: thumbnail_jpeg(self.store.read_bytes(f"{row.prefix}/qc.png"))
        )

    def projection(self, view: ImageView, channel: int) -> bytes | None:
        """PNG of one channel's maximum projection, or None when the source is unreadable."""
        if view.source_path is None:
            return None
        key = ("channel", str(view.source_path), channel)

        def compute() -> bytes:
            data = read_source(view.source_path)  # type: ignore[arg-type]
            if data is None:
                raise LookupError(f"{view.source_path} is not readable")
            return projection_png(data, channel)

        try:
            return self.pictures.get(key, compute)
        except LookupError:
            return None

    def cells_picture(self, view: ImageView) -> bytes:
        """A dim picture of the cells by type, the background when no source is readable."""
        row = view.row
        key = ("cells", row.prefix, row.signature[:2])

        def compute() -> bytes:
            labels = read_labels(self.store.read_bytes(f"{row.prefix}/labels.tif"))
            types = {int(c["cell_id"]): str(c["cell_type"]) for c in view.cells}
            return labels_png(labels, types, view.colours)

        return self.pictures.get(key, compute)

    def cell_counts(self, row: ImageRow) -> tuple[np.ndarray, np.ndarray]:
        """(cell type, PNP count) per cell of one image, cached until its files change."""
        return self.counts.get(
            (row.prefix, row.signature[:2]), lambda: cell_counts(self.store, row)
        )
