"""Register datasets and put each image on the queue exactly once (REST API and watcher).

Once-only enqueueing rests on two checks: an image whose result is published is recorded as
done and never queued; otherwise the first caller to create its state entry in Redis
(``HSETNX``, see :class:`~overnight.jobs.state.JobBook`) enqueues it and every later caller —
a second submission, a re-scan, a restarted watcher, a touched file — finds the entry and does
nothing. An entry left ``queued`` without a job (a caller killed between the two steps) is
enqueued by the next caller; :func:`~overnight.jobs.queues.enqueue_stage` makes sure that a
job id is put on the queue by one caller only, even when several race.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from redis import Redis

from overnight.errors import ConfigError
from overnight.imaging.files import IgnoredFile
from overnight.jobs.ids import STAGE_PREFIX, dataset_id_for, job_id_for, upload_dataset_id
from overnight.jobs.payload import ImageJob
from overnight.jobs.queues import enqueue_stage, fetch_job
from overnight.jobs.settings import JobSettings
from overnight.jobs.sources import check_source_url, image_id_of
from overnight.jobs.stages import finish_if_done
from overnight.jobs.state import DatasetRecord, ImageState, JobBook
from overnight.jobs.status import JobStatus
from overnight.pipeline.definition import builtin_pipelines, load_pipeline
from overnight.results.layout import DATASET_FILE, DatasetResults
from overnight.storage import ObjectInfo, ObjectStore, is_complete, validate_id

logger = logging.getLogger(__name__)

#: Source value of datasets filled by uploads.
UPLOAD_SOURCE = "upload"
#: Keys of a dataset record's metadata set by overnight: the model versions its images are
#: analysed with (name → version), and the dataset it re-analyses (whose uploads it reads).
MODELS_KEY = "models"
REANALYSIS_OF_KEY = "reanalysis_of"


def upload_prefix(dataset_id: str) -> str:
    """``uploads/<dataset_id>/``: where an upload dataset's images lie in the service's store."""
    return f"uploads/{dataset_id}/"


@dataclass(frozen=True)
class Submitter:
    """What registering and enqueueing need: Redis, the results store and the settings."""

    redis: Redis
    store: ObjectStore
    settings: JobSettings

    @property
    def book(self) -> JobBook:
        """State in Redis."""
        return JobBook(self.redis)

    def register(
        self, source: str | None, pipeline: str, metadata: dict[str, Any] | None = None
    ) -> tuple[DatasetRecord, bool]:
        """Register the dataset at ``source`` (None: filled by uploads); (record, created).

        The id is derived from the source and pipeline, so registering the same folder again
        returns the existing dataset.
        """
        if pipeline != self.settings.pipeline and pipeline not in builtin_pipelines():
            # a request names a built-in, never a file: nothing outside them is ever opened
            raise ConfigError(
                f"pipeline {pipeline[:80]!r} is not a built-in pipeline "
                f"({', '.join(builtin_pipelines())}) nor this service's OVERNIGHT_PIPELINE"
            )
        check_pipeline(pipeline)
        if source is None:
            dataset_id, source = upload_dataset_id(UPLOAD_SOURCE), UPLOAD_SOURCE
        else:
            source = check_source_url(source, self.settings, must_exist=True)
            dataset_id = dataset_id_for(source, pipeline)
        record = DatasetRecord(
            id=dataset_id, source=source, pipeline=pipeline, metadata=metadata or {}
        )
        created = self.book.create_dataset(record)
        if not created:
            existing = self.book.dataset(dataset_id)
            return (existing or record), False
        self.write_record(record)
        logger.info("registered dataset %s (%s, %s)", dataset_id, source, pipeline)
        return record, True

    def write_record(self, record: DatasetRecord) -> None:
        """Save the record in Redis and as ``results/<id>/dataset.json`` (for the QC web)."""
        self.book.save_dataset(record)
        body = json.dumps(record.model_dump(mode="json"), indent=2).encode("utf-8")
        DatasetResults.of_dataset(self.store, record.id).write_file(DATASET_FILE, body)

    def enqueue_images(self, record: DatasetRecord, images: Iterable[ObjectInfo]) -> list[str]:
        """Enqueue each image of ``record`` not seen before; return the ids enqueued now."""
        enqueued = [info.key for info in images if self.enqueue_image(record, info.key)]
        known = len(self.book.images(record.id))
        if known != record.n_images:
            self.write_record(record.model_copy(update={"n_images": known}))
        return enqueued

    def record_ignored(self, record: DatasetRecord, ignored: Iterable[IgnoredFile]) -> int:
        """List each file that cannot be analysed as a failed image with its reason.

        They count in the dataset's images and land in ``failures.json``; a dataset with
        nothing left to run is finished now. Returns how many entries are new.
        """
        new = 0
        for item in ignored:
            image_id = validate_id(item.image_id)
            new += self.book.record_ignored_image(record.id, image_id, item.relative, item.reason)
        if new:
            known = len(self.book.images(record.id))
            self.write_record(record.model_copy(update={"n_images": known}))
            finish_if_done(self.book, DatasetResults.of_dataset(self.store, record.id), record.id)
        return new

    def enqueue_image(self, record: DatasetRecord, key: str) -> bool:
        """Enqueue the image at ``key`` of ``record``'s source once; True if enqueued now."""
        image = self.image_job(record, key)
        job_id = job_id_for("segmentation", record.id, image.image_id)
        earlier = self.book.image(record.id, image.image_id)
        if earlier is not None and not earlier.job_id:  # ignored before, an image now
            self.book.forget_image(record.id, image.image_id)
        if self.book.image(record.id, image.image_id) is None and is_complete(
            self.store, image.result_prefix
        ):
            self.book.record_done_image(record.id, image.image_id, key, job_id)
            return False
        if not self.book.claim_image(record.id, image.image_id, key, job_id) and not self._orphaned(
            image
        ):
            return False
        count = partial(self.book.count_enqueue, record.id, image.image_id)
        job = enqueue_stage(self.redis, "segmentation", image, self.settings, with_enqueue=count)
        return job is not None

    def retry_failed(self, record: DatasetRecord) -> list[str]:
        """Re-enqueue every failed image of ``record``; return their ids."""
        retried = []
        for state in self.book.images(record.id):
            if state.status != JobStatus.FAILED:
                continue
            self._retry(record, state)
            retried.append(state.image_id)  # enqueued now, or its job is pending already
        return retried

    def retry_changed(self, record: DatasetRecord, key: str) -> bool:
        """Re-enqueue the image at ``key`` if it failed: its file changed since (the watcher).

        A copy that stalled longer than the stability wait was analysed half-written and
        failed; once the finished file is stable it is analysed again. Returns whether it was.
        """
        state = self.book.image(record.id, self.image_job(record, key).image_id)
        if state is None or state.status != JobStatus.FAILED or not state.job_id:
            return False
        logger.info("image %s failed before and its file changed; analysing it again", key)
        self._retry(record, state)
        return True

    def _retry(self, record: DatasetRecord, state: ImageState) -> None:
        self.book.requeue_image(record.id, state.image_id)
        self.book.clear_deaths(
            *(job_id_for(stage, record.id, state.image_id) for stage in STAGE_PREFIX)
        )
        image = self.image_job(record, state.image_key)
        count = partial(self.book.count_enqueue, record.id, state.image_id)
        enqueue_stage(
            self.redis, "segmentation", image, self.settings, again=True, with_enqueue=count
        )

    def image_job(self, record: DatasetRecord, key: str) -> ImageJob:
        """The queue payload for the image at ``key`` of ``record``."""
        uploads = upload_prefix(str(record.metadata.get(REANALYSIS_OF_KEY) or record.id))
        return ImageJob(
            dataset_id=record.id,
            image_id=image_id_of(key, uploads if record.source == UPLOAD_SOURCE else ""),
            image_key=key,
            source_url=None if record.source == UPLOAD_SOURCE else record.source,
            pipeline=record.pipeline,
            models=dict(record.metadata.get(MODELS_KEY) or {}),
        )

    def _orphaned(self, image: ImageJob) -> bool:
        """Whether a known image is ``queued`` without a job (its claimer died first)."""
        state = self.book.image(image.dataset_id, image.image_id)
        if state is None or state.status != JobStatus.QUEUED:
            return False
        if fetch_job(self.redis, state.job_id) is not None:
            return False
        logger.warning("image %s was claimed but not enqueued; enqueueing it", image.image_id)
        return True


@lru_cache(maxsize=32)
def check_pipeline(name: str) -> str:
    """Return ``name`` if it is a pipeline that loads; :class:`ConfigError` otherwise."""
    load_pipeline(name)
    return name
