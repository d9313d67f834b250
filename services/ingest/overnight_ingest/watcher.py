"""The watcher: find new images in NAS folders and bucket prefixes, enqueue each once it is whole.

Each watched source is one dataset (the id the REST API would give it). A scan lists the
source; an image is enqueued when it is *stable* — its size and mtime (ETag on S3) unchanged
for ``stable_s`` seconds, seen across scans by this process or shown by an mtime at least that
old — so a file still being copied is never read. Dedupe does not rest on this process's
memory: the fingerprint (size + mtime/ETag) of every handled key is recorded in Redis, and
the once-only claim of :class:`~overnight.jobs.submit.Submitter` (plus the check for an
existing result) stops a restarted watcher, a re-scan, a touched file or a concurrent REST
submission from enqueueing an image twice. An image whose analysis failed is analysed again
once its file changed and is stable again (a copy that stalled longer than ``stable_s`` was
read half-written; the finished file is read whole).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from overnight.errors import ObjectNotFoundError, OvernightError
from overnight.imaging.files import split_part_key
from overnight.jobs.connection import REDIS_TRANSIENT_ERRORS
from overnight.jobs.sources import list_source, open_source
from overnight.jobs.state import DatasetRecord
from overnight.jobs.submit import Submitter
from overnight.storage import ObjectInfo
from overnight_ingest.cron import CronSchedule

logger = logging.getLogger(__name__)

#: Failures of one scan that the loop logs and outlives (the next scan tries again).
_SCAN_ERRORS: tuple[type[Exception], ...] = (OvernightError, *REDIS_TRANSIENT_ERRORS)


def fingerprint(info: ObjectInfo) -> str:
    """``<size>:<ETag or mtime>``: changes whenever the object's bytes may have changed."""
    return f"{info.size}:{info.etag or f'{info.mtime:.6f}'}"


@dataclass(frozen=True)
class _Sighting:
    """A key's fingerprint and when this process first saw it (epoch s)."""

    fingerprint: str
    since: float


@dataclass(frozen=True)
class ScanReport:
    """What one scan did: keys enqueued, keys still settling, keys known already."""

    enqueued: tuple[str, ...]
    waiting: int
    known: int


class Watcher:
    """Scans sources and enqueues stable, unseen images (see the module doc)."""

    def __init__(
        self, submitter: Submitter, sources: list[str], pipeline: str, stable_s: float
    ) -> None:
        self.submitter = submitter
        self.sources = sources
        self.pipeline = pipeline
        self.stable_s = stable_s
        self._sightings: dict[tuple[str, str], _Sighting] = {}

    @property
    def waiting(self) -> int:
        """Keys seen but not stable yet."""
        return len(self._sightings)

    def scan(self, now: float | None = None) -> ScanReport:
        """List every source once and enqueue what is stable and new."""
        now = time.time() if now is None else now
        enqueued: list[str] = []
        known = 0
        for url in self.sources:
            record, _ = self.submitter.register(url, self.pipeline)
            stable = []
            listing = list_source(open_source(url, self.submitter.settings))
            for info in listing.images:
                verdict = self._consider(record, info, now)
                known += verdict == "known"
                if verdict == "stable":
                    stable.append(info)
            enqueued += self._enqueue(record, stable)
            self.submitter.record_ignored(
                self.submitter.book.dataset(record.id) or record, listing.ignored
            )
        return ScanReport(tuple(enqueued), self.waiting, known)

    def recheck(self, now: float | None = None) -> ScanReport:
        """Look again only at the keys still settling (cheaper than a full scan)."""
        now = time.time() if now is None else now
        enqueued: list[str] = []
        for url in self.sources:
            record, _ = self.submitter.register(url, self.pipeline)
            source = open_source(url, self.submitter.settings)
            stable = []
            for dataset_id, key in [k for k in self._sightings if k[0] == record.id]:
                try:
                    # a part key (``a.czi#t001``) settles with its file
                    info = replace(source.stat(split_part_key(key)[0]), key=key)
                except ObjectNotFoundError:
                    del self._sightings[(dataset_id, key)]
                    continue
                if self._consider(record, info, now) == "stable":
                    stable.append(info)
            enqueued += self._enqueue(record, stable)
        return ScanReport(tuple(enqueued), self.waiting, 0)

    def next_due(self) -> float | None:
        """When the earliest settling key may become stable (epoch s), or None."""
        if not self._sightings:
            return None
        return min(s.since for s in self._sightings.values()) + self.stable_s

    def _consider(self, record: DatasetRecord, info: ObjectInfo, now: float) -> str:
        """``known`` (handled before), ``waiting`` (still settling) or ``stable``."""
        mark = fingerprint(info)
        if self.submitter.book.seen_fingerprint(record.id, info.key) == mark:
            return "known"
        sighting = self._sightings.get((record.id, info.key))
        if sighting is None or sighting.fingerprint != mark:
            sighting = _Sighting(mark, now)
            self._sightings[(record.id, info.key)] = sighting
        unchanged_s = max(now - sighting.since, now - info.mtime)
        return "stable" if unchanged_s >= self.stable_s else "waiting"

    def _enqueue(self, record: DatasetRecord, stable: list[ObjectInfo]) -> list[str]:
        if not stable:
            return []
        fresh = self.submitter.book.dataset(record.id) or record
        retried = [
            info.key
            for info in stable
            if self.submitter.book.seen_fingerprint(record.id, info.key) is not None
            and self.submitter.retry_changed(fresh, info.key)
        ]
        enqueued = retried + self.submitter.enqueue_images(fresh, stable)
        for info in stable:
            self.submitter.book.mark_seen(record.id, info.key, fingerprint(info))
            self._sightings.pop((record.id, info.key), None)
        if enqueued:
            logger.info("dataset %s: enqueued %d new images", record.id, len(enqueued))
        return enqueued


def run_watcher(
    watcher: Watcher,
    interval_s: float,
    schedule: CronSchedule | None,
    stop: threading.Event,
    tick_s: float = 0.5,
    heartbeat_file: Path | None = None,
) -> None:
    """Scan every ``interval_s`` (0: never by time) and at each ``schedule`` minute until ``stop``.

    Keys still settling are re-checked as soon as they can be stable. Redis and storage
    outages are logged and waited out. ``heartbeat_file`` (``OVERNIGHT_WATCH_HEARTBEAT_FILE``)
    is touched every tick: liveness for a container healthcheck.
    """
    next_poll = time.time()
    last_cron_minute: datetime | None = None
    while not stop.is_set():
        if heartbeat_file:
            with open(heartbeat_file, "a"):
                os.utime(heartbeat_file)
        now = time.time()
        minute = datetime.fromtimestamp(now).replace(second=0, microsecond=0)
        cron_due = schedule is not None and minute != last_cron_minute and schedule.matches(minute)
        try:
            if cron_due or (interval_s > 0 and now >= next_poll):
                last_cron_minute = minute if cron_due else last_cron_minute
                next_poll = now + interval_s
                report = watcher.scan(now)
                logger.debug(
                    "scan: %d enqueued, %d settling, %d known",
                    len(report.enqueued),
                    report.waiting,
                    report.known,
                )
            elif (due := watcher.next_due()) is not None and now >= due:
                watcher.recheck(now)
        except _SCAN_ERRORS as err:
            logger.error("scan failed, will try again: %s", err)
        stop.wait(tick_s)
