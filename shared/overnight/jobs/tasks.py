"""The RQ job functions: read → run a pipeline stage → publish → report the stage.

Each stage runs pieces of :func:`overnight.pipeline.image.analyse_image` (the segmentation
job the first stage, the counting job the second and the publication). Each takes one JSON
argument, an :class:`~overnight.jobs.payload.ImageJob`. Errors are sorted once, by
:func:`~overnight.pipeline.outcome.sort_error` in :func:`reporting`: a bad image fails at once
with its reason, a transient error is raised so RQ retries it with backoff (the reason is kept
when retries run out), anything else fails the image with its reason and is not retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rq import get_current_job
from rq.job import Job

from overnight.config import load_settings
from overnight.errors import ConfigError, OvernightError
from overnight.jobs.connection import REDIS_TRANSIENT_ERRORS
from overnight.jobs.handoff import Handoff, handoff_names, pack_handoff, unpack_handoff
from overnight.jobs.payload import ImageJob
from overnight.jobs.queues import enqueue_stage
from overnight.jobs.retrain_models import prepared_with_models
from overnight.jobs.settings import JobSettings
from overnight.jobs.stages import (
    FIRST_STAGE,
    SECOND_STAGE,
    StageContext,
    finish_if_done,
    is_staged,
)
from overnight.jobs.status import JobStatus
from overnight.jobs.upkeep import died_reason
from overnight.pipeline.image import (
    ImageFacts,
    analyse_image,
    opened_image,
    publish_image,
    run_steps,
)
from overnight.pipeline.outcome import TRANSIENT_ERRORS as IMAGE_TRANSIENT_ERRORS
from overnight.pipeline.outcome import FailureKind, sort_error
from overnight.pipeline.runner import PipelineRun, PreparedPipeline
from overnight.pipeline.skin_pk import analyse_skin_series
from overnight.storage.copies import local_folder

logger = logging.getLogger(__name__)

#: Errors worth retrying: storage or Redis hiccups, dropped connections, timeouts.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    *IMAGE_TRANSIENT_ERRORS,
    *REDIS_TRANSIENT_ERRORS,
)

_context: StageContext | None = None


def use_context(context: StageContext) -> None:
    """Make ``context`` the one this process's jobs use (the worker sets it at start-up)."""
    global _context
    _context = context


def current_context() -> StageContext:
    """Return the context of this process, built from the environment on first use."""
    global _context
    if _context is None:
        _context = StageContext(load_settings(JobSettings))
    return _context


def job_pipeline(ctx: StageContext, job: ImageJob) -> PreparedPipeline:
    """The job's prepared pipeline, with the model versions its dataset names (if any)."""
    if not job.models:
        return ctx.pipeline(job.pipeline)
    return prepared_with_models(job.pipeline, job.models, ctx.settings.step_overrides())


def segment_image(payload: dict[str, Any]) -> str:
    """Segmentation job: segment and classify cells, hand over, enqueue the counting job."""
    ctx, job = current_context(), ImageJob.from_json(payload)
    with reporting(ctx, job, "segmentation"):
        prepared, results = job_pipeline(ctx, job), ctx.results(job.dataset_id)
        if prepared.pipeline.is_series:
            return analyse_series(ctx, job)
        if results.is_complete(job.image_id):
            return _done(ctx, job)
        ctx.book.set_status(job.dataset_id, job.image_id, JobStatus.READING)
        with opened_image(ctx.image_source(job), prepared.pipeline, ctx.limits) as image:
            ctx.book.set_status(job.dataset_id, job.image_id, JobStatus.SEGMENTING)
            # A field beyond the working-set budget runs block by block, all steps in this
            # job: its blocks' intermediate values are never whole, so there is no hand-off.
            if not is_staged(prepared) or image.blocks is not None:
                run = run_steps(prepared, image)
                publish_image(
                    results,
                    prepared,
                    image.stack,
                    image.facts,
                    run,
                    output_format=ctx.settings.output_format,
                )
                return _done(ctx, job)
            run = run_steps(prepared, image, FIRST_STAGE)
        names = handoff_names(prepared.pipeline, FIRST_STAGE, SECOND_STAGE)
        handoff = Handoff(
            values={name: run.values[name] for name in names},
            read_s=image.facts.read_s,
            timings_s=dict(run.timings_s),
            metadata=image.facts.metadata,
            warnings=image.facts.warnings,
        )
        ctx.store.write_bytes(job.handoff_key, pack_handoff(handoff))
        enqueue_stage(ctx.redis, "counting", job, ctx.settings)
        return "segmented"
    return "failed"


def count_image(payload: dict[str, Any]) -> str:
    """Counting job: detect and count PNPs, publish tables, QC image and manifest."""
    ctx, job = current_context(), ImageJob.from_json(payload)
    with reporting(ctx, job, "counting"):
        prepared, results = job_pipeline(ctx, job), ctx.results(job.dataset_id)
        if results.is_complete(job.image_id):
            return _done(ctx, job)
        ctx.book.set_status(job.dataset_id, job.image_id, JobStatus.READING)
        handoff = unpack_handoff(ctx.store.read_bytes(job.handoff_key))
        segmented = PipelineRun(values=handoff.values, timings_s=handoff.timings_s)
        facts = ImageFacts(handoff.metadata, handoff.warnings, handoff.read_s)
        with opened_image(ctx.image_source(job), prepared.pipeline, ctx.limits) as image:
            ctx.book.set_status(job.dataset_id, job.image_id, JobStatus.COUNTING)
            run = run_steps(prepared, image, SECOND_STAGE, segmented)
            ctx.book.set_status(job.dataset_id, job.image_id, JobStatus.PUBLISHING)
            publish_image(
                results,
                prepared,
                image.stack,
                facts,
                run,
                output_format=ctx.settings.output_format,
            )
        return _done(ctx, job)
    return "failed"


def analyse_series(ctx: StageContext, job: ImageJob) -> str:
    """A series pipeline's job (``skin-pk``): the whole series of the job's dataset.

    A series maps to jobs as follows: every image is enqueued as usual, and the first job to
    run analyses every image of the dataset present now
    (:func:`~overnight.pipeline.skin_pk.analyse_skin_series`), writes the series' tables and
    plots and marks those images done or failed; the other images' jobs then find their image
    final and do nothing. An image that arrives later re-runs the series, which reuses every
    published timepoint's labels and segments only the new ones.
    """
    state = ctx.book.image(job.dataset_id, job.image_id)
    if state is not None and state.status in (JobStatus.DONE, JobStatus.FAILED):
        return str(state.status.value)
    images = [s for s in ctx.book.images(job.dataset_id) if s.status != JobStatus.DONE]
    for image in images:
        ctx.book.set_status(job.dataset_id, image.image_id, JobStatus.SEGMENTING)
    with local_folder(ctx.source(job.source_url)) as folder:
        outcome = analyse_skin_series(
            folder, ctx.pipeline(job.pipeline), ctx.results(job.dataset_id)
        )
    for image in images:
        reasons = [f["error"] for f in outcome.failures if f["source"].endswith(image.image_key)]
        status = JobStatus.FAILED if reasons else JobStatus.DONE
        ctx.book.set_status(job.dataset_id, image.image_id, status, "; ".join(reasons))
    logger.info(
        "series %s: %d timepoint(s) analysed, %d failure(s)",
        job.dataset_id,
        len(outcome.analysed),
        len(outcome.failures),
        extra={"dataset_id": job.dataset_id},
    )
    return "done"


def run_image(ctx: StageContext, job: ImageJob) -> JobStatus:
    """Analyse the whole image in this process, no queue (one pod per image).

    ``overnight worker run-image`` calls it; it is :func:`~overnight.pipeline.image.analyse_image`.

    Returns the image's final status; a bad image raises :class:`InvalidImageError`. A series
    pipeline's pod analyses the whole series (:func:`analyse_series`).
    """
    if ctx.pipeline(job.pipeline).pipeline.is_series:
        analyse_series(ctx, job)
        state = ctx.book.image(job.dataset_id, job.image_id)
        return state.status if state is not None else JobStatus.DONE
    analyse_image(
        ctx.image_source(job),
        job_pipeline(ctx, job),
        ctx.results(job.dataset_id),
        verify=True,
        limits=ctx.limits,
        output_format=ctx.settings.output_format,
    )
    return JobStatus.DONE


def fail_dead_job(job: Job, deaths: int) -> None:
    """Fail the image of an RQ job whose workers died ``deaths`` times (a poison image).

    Called by the queue upkeep (:func:`~overnight.jobs.upkeep.requeue_abandoned`); a job that
    is not an image stage (no :class:`ImageJob` argument) has no image to fail.
    """
    try:
        image = ImageJob.from_json(job.args[0])
    except (ConfigError, IndexError, TypeError, AttributeError):
        return
    _fail(current_context(), image, f"{image.image_key}: {died_reason(deaths)}")


def _done(ctx: StageContext, job: ImageJob) -> str:
    ctx.store.delete(job.handoff_key)
    _finalise(ctx, job, JobStatus.DONE)
    return "done"


def _fail(ctx: StageContext, job: ImageJob, reason: str) -> None:
    _finalise(ctx, job, JobStatus.FAILED, reason)


def _finalise(ctx: StageContext, job: ImageJob, status: JobStatus, reason: str = "") -> None:
    """Mark the image final; the summary is written first if it is the dataset's last image.

    (A series pipeline's dataset files are written by its series job, :func:`analyse_series`.)

    When the last two images finish at once neither sees the other final beforehand, so the
    check runs again after the status change: the later of the two then writes the summary.

    A failure is recorded even when the dataset's files cannot be written (the store being
    what failed): the dataset then ends without its summary, and the log says why. A done
    image whose dataset files cannot be written raises instead, so its job is retried.
    """
    results = ctx.results(job.dataset_id)
    try:
        written = finish_if_done(ctx.book, results, job.dataset_id, job.image_id, status, reason)
    except OvernightError as err:
        if status is not JobStatus.FAILED:
            raise
        ctx.book.set_status(job.dataset_id, job.image_id, status, reason)
        logger.error(
            "image %s failed, and the files of dataset %s could not be written: %s",
            job.image_id,
            job.dataset_id,
            err,
            extra={"image_id": job.image_id, "dataset_id": job.dataset_id},
        )
        return
    ctx.book.set_status(job.dataset_id, job.image_id, status, reason)
    if not written:
        finish_if_done(ctx.book, results, job.dataset_id)


def _retries_left() -> int:
    current = get_current_job()
    return int(current.retries_left or 0) if current is not None else 0


@contextmanager
def reporting(ctx: StageContext, job: ImageJob, stage: str) -> Iterator[None]:
    """Time the job and turn its errors into an image status (see the module doc)."""
    start = time.perf_counter()
    extra = {"image_id": job.image_id, "dataset_id": job.dataset_id, "stage": stage}
    try:
        yield
    except Exception as err:  # sorted once (sort_error); a bug must not block its dataset
        failure = sort_error(err, TRANSIENT_ERRORS)
        if failure.kind is not FailureKind.TRANSIENT:
            failure.log(logger, err, extra)
            _fail(ctx, job, failure.reason)
            return
        if _retries_left() > 0:
            logger.warning("transient error, will retry: %s", err, extra=extra)
            ctx.book.set_status(
                job.dataset_id, job.image_id, JobStatus.QUEUED, f"retrying after: {err}"
            )
        else:
            logger.error("transient error, no retry left: %s", err, extra=extra)
            _fail(ctx, job, f"gave up after retries: {type(err).__name__}: {err}")
        raise
    finally:
        ctx.book.record_duration(stage, time.perf_counter() - start)
