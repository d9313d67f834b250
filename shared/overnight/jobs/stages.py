"""The work of each queue stage on one image, with what a worker process keeps between jobs.

A :class:`StageContext` is built once per worker process: it holds the prepared pipelines
(models load once, on first use or :meth:`StageContext.warm`), the results store and the
source stores. The job functions in :mod:`overnight.jobs.tasks` only orchestrate these calls.

Results are the embedded run's (:mod:`overnight.pipeline.batch`): the same ``result.json``
and artefacts, published with :func:`~overnight.storage.publish_result` under
``results/<dataset_id>/<image_id>/``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis

from overnight.imaging.reader import read_stack
from overnight.imaging.stack import ImageStack
from overnight.jobs.connection import connect
from overnight.jobs.handoff import Handoff, handoff_names
from overnight.jobs.payload import ImageJob
from overnight.jobs.settings import JobSettings
from overnight.jobs.sources import local_copy, open_source
from overnight.jobs.state import JobBook
from overnight.jobs.status import JobStatus, count_statuses
from overnight.metadata import metadata_for

# Private helpers of the embedded run, shared so both write identical results (see report).
from overnight.pipeline.batch import write_summary
from overnight.pipeline.definition import load_pipeline
from overnight.pipeline.runner import PipelineRun, PreparedPipeline
from overnight.results.artefacts import manifest_info, result_artefacts, result_record
from overnight.storage import Manifest, ObjectStore, is_complete, open_store, publish_result

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

    def warm(self, *names: str) -> None:
        """Set the named pipelines up now (at worker start), not during the first job."""
        for name in names:
            self.pipeline(name)


@dataclass(frozen=True)
class LoadedImage:
    """An image read for a job, with its file-name metadata and the read time (s)."""

    stack: ImageStack
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    read_s: float = 0.0


def is_staged(ctx: StageContext, pipeline_name: str) -> bool:
    """Whether the pipeline splits into the segmentation and counting stages."""
    stages = ctx.pipeline(pipeline_name).pipeline.stages
    return FIRST_STAGE in stages and SECOND_STAGE in stages


def already_published(ctx: StageContext, job: ImageJob) -> bool:
    """Whether the image's result is published (a duplicate delivery has nothing to do)."""
    return is_complete(ctx.store, job.result_prefix)


@contextmanager
def opened_image(ctx: StageContext, job: ImageJob) -> Iterator[LoadedImage]:
    """Read the job's image (a local copy for remote sources, kept while the block runs).

    Raises
    ------
    InvalidImageError
        The file cannot be analysed (never retried).
    """
    start = time.perf_counter()
    pipeline = ctx.pipeline(job.pipeline).pipeline
    source = ctx.source(job.source_url)
    with local_copy(source, job.image_key) as path:
        resolved = metadata_for(path, root=_dataset_root(source, path))
        roles = pipeline.channel_roles
        stack = read_stack(
            path, image_id=job.image_id, channels_required=len(roles), channel_roles=roles
        )
        yield LoadedImage(
            stack, dict(resolved.fields), tuple(resolved.warnings), time.perf_counter() - start
        )


def _dataset_root(source: ObjectStore, path: Path) -> Path | None:
    """The dataset folder (its sub-folder names carry metadata), when the image lies in it."""
    root = getattr(source, "root", None)
    return root if isinstance(root, Path) and path.is_relative_to(root.resolve()) else None


def segment(ctx: StageContext, job: ImageJob, image: LoadedImage) -> Handoff:
    """Run the segmentation stage; return what the counting stage needs."""
    prepared = ctx.pipeline(job.pipeline)
    run = prepared.run({"stack": image.stack}, stage=FIRST_STAGE)
    names = handoff_names(prepared.pipeline, FIRST_STAGE, SECOND_STAGE)
    return Handoff(
        values={name: run.values[name] for name in names},
        read_s=image.read_s,
        timings_s=dict(run.timings_s),
        metadata=image.metadata,
        warnings=image.warnings,
    )


def count(ctx: StageContext, job: ImageJob, image: LoadedImage, handoff: Handoff) -> PipelineRun:
    """Run the counting stage on the image and the segmentation hand-off."""
    run = ctx.pipeline(job.pipeline).run(
        {"stack": image.stack, **handoff.values}, stage=SECOND_STAGE
    )
    return PipelineRun(values=run.values, timings_s={**handoff.timings_s, **run.timings_s})


def analyse_whole(ctx: StageContext, job: ImageJob, image: LoadedImage) -> PipelineRun:
    """Run every step at once (a pipeline without stages)."""
    return ctx.pipeline(job.pipeline).run({"stack": image.stack})


def publish(
    ctx: StageContext,
    job: ImageJob,
    image: LoadedImage,
    run: PipelineRun,
    handoff: Handoff | None = None,
) -> Manifest:
    """Publish the image's result exactly as the embedded run would (manifest last)."""
    prepared = ctx.pipeline(job.pipeline)
    facts = handoff or Handoff(
        values={}, read_s=image.read_s, metadata=image.metadata, warnings=image.warnings
    )
    record = result_record(
        image.stack,
        run,
        prepared.pipeline.describe(),
        prepared.versions(),
        facts.metadata,
        list(facts.warnings),
        facts.read_s,
        prepared.pipeline.cell_type_names,
    )
    return publish_result(
        ctx.store, job.result_prefix, result_artefacts(run, record), manifest_info(record)
    )


def finish_dataset(
    ctx: StageContext,
    dataset_id: str,
    finishing: str | None = None,
    final_status: JobStatus = JobStatus.DONE,
) -> bool:
    """Write ``results/<id>/summary.csv`` when no image of the dataset waits or runs any more.

    ``finishing`` names an image about to be marked ``final_status``: it counts as such, so the
    summary is written *before* the last status change and a reader who sees the dataset
    ``done`` finds it. Returns whether the dataset was finished (and the summary written).
    """
    states = ctx.book.images(dataset_id)
    counts = count_statuses(final_status if s.image_id == finishing else s.status for s in states)
    if not counts.finished:
        return False
    rows = write_summary(ctx.store, f"results/{dataset_id}")
    logger.info(
        "dataset %s finished: %d done, %d failed, summary with %d rows",
        dataset_id,
        counts.done,
        counts.failed,
        rows,
    )
    return True
