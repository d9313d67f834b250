"""What a queue worker keeps between jobs, and finishing a dataset from the job book.

A :class:`StageContext` is built once per worker process: it holds the prepared pipelines
(models load once, on first use or :meth:`StageContext.warm`), the results store and the
source stores. The job functions in :mod:`overnight.jobs.tasks` run the pieces of
:func:`overnight.pipeline.image.analyse_image` with it, stage by stage.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

from redis import Redis

from overnight.imaging.limits import ReadLimits
from overnight.jobs.connection import connect
from overnight.jobs.payload import ImageJob
from overnight.jobs.settings import JobSettings
from overnight.jobs.sources import open_source
from overnight.jobs.state import JobBook
from overnight.jobs.status import JobStatus, count_statuses
from overnight.pipeline.definition import is_series_pipeline, load_pipeline
from overnight.pipeline.image import ImageSource
from overnight.pipeline.outcome import ImageOutcome
from overnight.pipeline.runner import PreparedPipeline
from overnight.results.dataset import finish_dataset
from overnight.results.layout import DatasetResults
from overnight.storage import ObjectStore, open_store

logger = logging.getLogger(__name__)

FIRST_STAGE = "segmentation"
SECOND_STAGE = "counting"


class StageContext:
    """What one worker process keeps between jobs: pipelines, stores and the Redis client."""

    def __init__(self, settings: JobSettings, redis: Redis | None = None) -> None:
        self.settings = settings
        self.redis = redis if redis is not None else connect(settings.redis_url)
        self.book = JobBook(self.redis)
        self.store: ObjectStore = open_store(settings.storage_url, settings)
        self._pipelines: dict[str, PreparedPipeline] = {}
        self._sources: dict[str | None, ObjectStore] = {}

    def pipeline(self, name: str) -> PreparedPipeline:
        """The prepared pipeline ``name``, set up on first use in this process."""
        if name not in self._pipelines:
            start = time.perf_counter()
            self._pipelines[name] = PreparedPipeline(
                load_pipeline(name, self.settings.step_overrides())
            )
            logger.info("pipeline %s ready in %.2f s", name, time.perf_counter() - start)
        return self._pipelines[name]

    def source(self, url: str | None) -> ObjectStore:
        """The store images of a dataset are read from (checked against the allowed roots)."""
        if url not in self._sources:
            self._sources[url] = open_source(url, self.settings)
        return self._sources[url]

    def image_source(self, job: ImageJob) -> ImageSource:
        """Where the job's image lies: its key in the dataset's source store."""
        return ImageSource(key=job.image_key, store=self.source(job.source_url), id=job.image_id)

    @property
    def limits(self) -> ReadLimits:
        """Read limits of every image (``OVERNIGHT_MAX_WORKING_SET_GB``)."""
        return self.settings.read_limits()

    def results(self, dataset_id: str) -> DatasetResults:
        """The results of dataset ``dataset_id`` (``results/<id>`` of the store)."""
        return DatasetResults.of_dataset(self.store, dataset_id)

    def warm(self, *names: str) -> None:
        """Set the named pipelines up now (at worker start), not during the first job."""
        for name in names:
            self.pipeline(name)


def is_staged(prepared: PreparedPipeline) -> bool:
    """Whether the pipeline splits into the segmentation and counting stages."""
    stages = prepared.pipeline.stages
    return FIRST_STAGE in stages and SECOND_STAGE in stages


def finish_if_done(
    book: JobBook,
    results: DatasetResults,
    dataset_id: str,
    finishing: str | None = None,
    final_status: JobStatus = JobStatus.DONE,
    reason: str = "",
) -> bool:
    """Finish the dataset once no image of it waits or runs any more; whether it did.

    Calls :func:`~overnight.results.dataset.finish_dataset`. ``finishing`` names an image about
    to be marked ``final_status``: it counts as such, so the summary is written *before* the
    last status change and a reader who sees the dataset ``done`` finds it (``reason``: why it
    failed). Used by the queue workers and the
    Kubernetes dispatcher alike; ``failures.json`` lists the failed images with their reasons.
    """
    record = book.dataset(dataset_id)
    if record is not None and is_series_pipeline(record.pipeline):
        return True  # the series job writes a series' dataset files (jobs.tasks.analyse_series)
    states = book.images(dataset_id)
    counts = count_statuses(final_status if s.image_id == finishing else s.status for s in states)
    if not counts.finished:
        return False
    failures = [
        ImageOutcome(
            s.image_id, s.image_key, "failed", reason if s.image_id == finishing else s.reason
        )
        for s in sorted(states, key=lambda s: s.image_id)
        if (final_status if s.image_id == finishing else s.status) == JobStatus.FAILED
    ]
    rows = finish_dataset(results, [asdict(f) for f in failures])
    logger.info(
        "dataset %s finished: %d done, %d failed, summary with %d rows",
        dataset_id,
        counts.done,
        counts.failed,
        rows,
    )
    return True
