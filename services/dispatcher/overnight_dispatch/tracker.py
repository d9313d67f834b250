"""Follow the dispatcher's Jobs: list, then watch from the list's resourceVersion.

The usual Kubernetes informer loop, small: a list gives every Job and a resourceVersion; a
watch from there streams each change. A stream that ends (server timeout) or drops is
resumed from the last resourceVersion seen; one that answers 410 Gone (the version is older
than the API server keeps) is replaced by a fresh list. Each list is handed to ``on_list``
(the dispatcher reconciles its in-flight claims with it), each Job and each event to
``on_event``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from overnight.errors import TransientError
from overnight_dispatch.kube import RETRY_ERRORS, Backoff, KubeJobs, WatchExpired
from overnight_dispatch.outcome import resource_version

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]
#: Seconds the API server keeps one watch stream open before it ends it (then it is resumed).
DEFAULT_WATCH_TIMEOUT_S = 300


class JobTracker:
    """List + watch the Jobs matching ``label_selector`` until ``stop`` is set."""

    def __init__(
        self,
        jobs: KubeJobs,
        label_selector: str,
        on_event: Callable[[str, JsonDict], None],
        on_list: Callable[[list[JsonDict], float], None],
        stop: threading.Event,
        watch_timeout_s: int = DEFAULT_WATCH_TIMEOUT_S,
        backoff: Backoff | None = None,
    ) -> None:
        self.jobs = jobs
        self.label_selector = label_selector
        self.on_event = on_event
        self.on_list = on_list
        self.stop = stop
        self.watch_timeout_s = watch_timeout_s
        self.backoff = backoff or Backoff()
        self.lists = 0
        self.resumes = 0

    def sync(self) -> str:
        """List every Job, hand each to ``on_event`` and the list to ``on_list``; its version."""
        started = time.time()
        listing = self.jobs.list(self.label_selector)
        self.lists += 1
        for job in listing.items:
            self.on_event("LISTED", job)
        self.on_list(listing.items, started)
        logger.info(
            "listed %d Jobs at resourceVersion %s", len(listing.items), listing.resource_version
        )
        return listing.resource_version

    def run(self, version: str | None = None) -> None:
        """Watch from ``version`` (None: list first) until ``stop`` is set."""
        failures = 0
        while not self.stop.is_set():
            try:
                if version is None:
                    version = self.sync()
                version = self._watch(version)
                failures = 0
            except WatchExpired as err:
                logger.info("watch expired (%s); listing again", err)
                version = None
            except (TransientError, *RETRY_ERRORS) as err:
                if self.stop.is_set():
                    break
                self.resumes += 1
                delay = self.backoff.delay_s(min(failures, 6))
                failures += 1
                logger.warning("watch stream broke (%s); resuming in %.1f s", err, delay)
                self.stop.wait(delay)

    def _watch(self, version: str) -> str:
        """Stream events after ``version``; return the last version seen when it ends."""
        for kind, obj in self.jobs.watch(self.label_selector, version, self.watch_timeout_s):
            version = resource_version(obj) or version
            if kind != "BOOKMARK":
                self.on_event(kind, obj)
            if self.stop.is_set():
                break
        return version
