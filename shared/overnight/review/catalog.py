"""Cached, thread-safe access to the datasets of one store, for the QC service.

Listings and indexes are cached per dataset. A cached listing older than ``ttl_s`` is still
served while one background thread lists again (stale-while-revalidate), so a page never
waits for a listing of 10,000 folders once the first one is done; a changed listing rebuilds
the index incrementally (:func:`overnight.review.index.build_index`). ``ttl_s = 0`` lists on
every call (tests). Verdicts written through :meth:`Catalog.save_verdict` show at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from overnight.errors import ObjectNotFoundError
from overnight.review.index import DatasetIndex, ImageRow, build_index
from overnight.review.listing import DatasetListing, split_dataset, split_root
from overnight.review.verdicts import VerdictFile, VerdictRecord, record_verdict
from overnight.storage.base import ObjectStore
from overnight.storage.keys import join_key, validate_id

logger = logging.getLogger(__name__)

#: Seconds a listing is served before it is refreshed in the background.
DEFAULT_TTL_S = 5.0
#: A listing is refreshed at most every this many times its own duration, so listing a
#: huge dataset (seconds on a slow disk) never takes more than ~1/10 of the service's time.
LISTING_DUTY_FACTOR = 10.0


@dataclass(frozen=True)
class Layout:
    """Where datasets live in the store.

    Either every folder under ``root`` is a dataset (``results/<dataset_id>/``), or, with
    ``single_id`` set, the store's root itself is the one dataset (an embedded run's output).
    """

    root: str = "results"
    single_id: str | None = None

    def prefix_of(self, dataset_id: str) -> str:
        """The key prefix of a dataset (validated id); :class:`UnsafeKeyError` if invalid."""
        validate_id(dataset_id)
        if self.single_id is not None:
            if dataset_id != self.single_id:
                raise ObjectNotFoundError(f"no dataset {dataset_id!r}")
            return ""
        return join_key(self.root, dataset_id)


@dataclass
class _Cached:
    listing: DatasetListing
    listed_at: float
    list_s: float = 0.0
    index: DatasetIndex | None = None
    refreshing: bool = False


class Catalog:
    """The datasets of one store, their listings and indexes, kept fresh within ``ttl_s``."""

    def __init__(self, store: ObjectStore, layout: Layout, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.store = store
        self.layout = layout
        self.ttl_s = ttl_s
        self._lock = threading.RLock()
        self._datasets: dict[str, _Cached] = {}
        self._ids: tuple[float, float, tuple[str, ...]] | None = None  # listed at, took, ids
        self._ids_refreshing = False
        self._build_locks: dict[str, threading.Lock] = {}

    # -- listings ----------------------------------------------------------------------------

    def _list_dataset(self, dataset_id: str) -> DatasetListing:
        prefix = self.layout.prefix_of(dataset_id)
        objects = self.store.list(f"{prefix}/" if prefix else "")
        return split_dataset(dataset_id, prefix, objects)

    def _list_root(self, start: float) -> tuple[str, ...]:
        """List every dataset at once; also refreshes each dataset's cached listing."""
        if self.layout.single_id is not None:
            return (self.layout.single_id,)
        root = self.layout.root
        grouped = split_root(root, self.store.list(f"{root}/"))
        ids = []
        now = time.monotonic()
        for dataset_id, objects in grouped.items():
            try:
                validate_id(dataset_id)
            except Exception:  # a stray folder name is not a dataset
                logger.warning("skipping %s/%s: not a valid dataset id", root, dataset_id)
                continue
            ids.append(dataset_id)
            listing = split_dataset(dataset_id, join_key(root, dataset_id), objects)
            self._store_listing(dataset_id, listing, now, now - start)
        return tuple(ids)

    def _store_listing(
        self, dataset_id: str, listing: DatasetListing, listed_at: float, list_s: float = 0.0
    ) -> None:
        with self._lock:
            cached = self._datasets.get(dataset_id)
            if cached is None:
                self._datasets[dataset_id] = _Cached(listing, listed_at, list_s)
            else:
                cached.listing, cached.listed_at, cached.list_s = listing, listed_at, list_s

    def _in_background(self, work: Callable[[], object], done: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            except Exception:  # keep serving the stale listing; try again next time
                logger.exception("background listing failed")
            finally:
                done()

        threading.Thread(target=run, name="qc-listing", daemon=True).start()

    def dataset_ids(self) -> tuple[str, ...]:
        """Ids of every dataset, from a listing at most ``ttl_s`` old (or being refreshed)."""
        if self.ttl_s == 0:
            return self._refresh_ids()
        with self._lock:
            cached = self._ids
            if cached is not None:
                max_age_s = max(self.ttl_s, LISTING_DUTY_FACTOR * cached[1])
                stale = time.monotonic() - cached[0] >= max_age_s
                if stale and not self._ids_refreshing:
                    self._ids_refreshing = True
                    self._in_background(self._refresh_ids, self._ids_refreshed)
                return cached[2]
        return self._refresh_ids()

    def _refresh_ids(self) -> tuple[str, ...]:
        start = time.monotonic()
        ids = self._list_root(start)
        with self._lock:
            self._ids = (time.monotonic(), time.monotonic() - start, ids)
        return ids

    def _ids_refreshed(self) -> None:
        with self._lock:
            self._ids_refreshing = False

    def listing(self, dataset_id: str) -> DatasetListing:
        """The dataset's listing, at most ``ttl_s`` old (stale ones refresh in the background).

        Raises
        ------
        UnsafeKeyError
            For an invalid dataset id.
        ObjectNotFoundError
            When the dataset holds no object at all.
        """
        self.layout.prefix_of(dataset_id)  # validates the id before anything is cached under it
        if self.ttl_s == 0:
            return self._refresh_listing(dataset_id)
        with self._lock:
            cached = self._datasets.get(dataset_id)
            if cached is not None:
                max_age_s = max(self.ttl_s, LISTING_DUTY_FACTOR * cached.list_s)
                stale = time.monotonic() - cached.listed_at >= max_age_s
                if stale and not cached.refreshing:
                    cached.refreshing = True
                    self._in_background(
                        lambda: self._refresh_listing(dataset_id),
                        lambda: self._listing_refreshed(dataset_id),
                    )
                return cached.listing
        return self._refresh_listing(dataset_id)

    def _refresh_listing(self, dataset_id: str) -> DatasetListing:
        start = time.monotonic()
        listing = self._list_dataset(dataset_id)
        if not listing.images and not listing.dataset_files:
            raise ObjectNotFoundError(f"no dataset {dataset_id!r} in {self.store.url}")
        now = time.monotonic()
        self._store_listing(dataset_id, listing, now, now - start)
        return listing

    def _listing_refreshed(self, dataset_id: str) -> None:
        with self._lock:
            cached = self._datasets.get(dataset_id)
            if cached is not None:
                cached.refreshing = False

    # -- indexes -----------------------------------------------------------------------------

    def index(self, dataset_id: str) -> DatasetIndex:
        """The dataset's image index for its current listing (rebuilt only when it changed)."""
        listing = self.listing(dataset_id)
        with self._lock:
            build_lock = self._build_locks.setdefault(dataset_id, threading.Lock())
        with build_lock:  # one build per dataset at a time; others wait and reuse it
            with self._lock:
                cached = self._datasets[dataset_id]
                previous = cached.index
            if previous is not None and previous.listing_signature == listing.signature:
                return previous
            index = build_index(self.store, listing, previous)
            with self._lock:
                cached.index = index
            return index

    def row(self, dataset_id: str, image_id: str) -> ImageRow:
        """The index row of one complete image; :class:`ObjectNotFoundError` if there is none."""
        validate_id(image_id)
        row = self.index(dataset_id).by_id.get(image_id)
        if row is None:
            raise ObjectNotFoundError(
                f"no complete result for image {image_id!r} in {dataset_id!r}"
            )
        return row

    def save_verdict(self, dataset_id: str, image_id: str, decision: VerdictRecord) -> VerdictFile:
        """Record a reviewer's decision in storage and in the cached index."""
        row = self.row(dataset_id, image_id)
        saved = record_verdict(self.store, row.prefix, image_id, decision)
        with self._lock:
            cached = self._datasets.get(dataset_id)
            if cached is not None and cached.index is not None:
                cached.index = cached.index.with_verdict(image_id, saved)
        return saved

    def read(self, key: str) -> bytes:
        """Bytes of a key built by the caller from validated ids (validated again here)."""
        return self.store.read_bytes(join_key(key))
