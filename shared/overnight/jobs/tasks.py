"""The RQ job functions: read → run a pipeline stage → publish → report the stage.

Each takes one JSON argument, an :class:`~overnight.jobs.payload.ImageJob`. Errors are sorted
once, in :func:`reporting`: a bad image fails at once with its reason, a transient error is
raised so RQ retries it with backoff (the reason is kept when retries run out), anything else
fails the image with its reason and is not retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rq import get_current_job

from overnight.config import load_settings
from overnight.errors import InvalidImageError, OvernightError, TransientError
from overnight.jobs.connection import REDIS_TRANSIENT_ERRORS
from overnight.jobs.handoff import pack_handoff, unpack_handoff
from overnight.jobs.payload import ImageJob
from overnight.jobs.queues import enqueue_stage
from overnight.jobs.settings import JobSettings
from overnight.jobs.stages import (
    StageContext,
    already_published,
    analyse_whole,
    count,
    finish_dataset,
    is_staged,
    opened_image,
    publish,
    segment,
)
from overnight.jobs.status import JobStatus

logger = logging.getLogger(__name__)

#: Errors worth retrying: storage or Redis hiccups, dropped connections, timeouts.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    ConnectionError,
    TimeoutError,
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


def segment_image(payload: dict[str, Any]) -> str:
    """Segmentation job: segment and classify cells, hand over, enqueue the counting job."""
    ctx, job = current_context(), ImageJob.from_json(payload)
    with reporting(ctx, job, "segmentation"):
        if already_published(ctx, job):
            return _done(ctx, job)
        ctx.book.set_status(job.dataset_id, job.image_id, JobStatus.READING)
        with opened_image(ctx, job) as image:
            ctx.book.set_status(job.dataset_id, job.image_id, JobStatus.SEGMENTING)
            if not is_staged(ctx, job.pipeline):
                publish(ctx, job, image, analyse_whole(ctx, job, image))
                return _done(ctx, job)
            handoff = segment(ctx, job, image)
        ctx.store.write_bytes(job.handoff_key, pack_handoff(handoff))
        enqueue_stage(ctx.redis, "counting", job, ctx.settings)
        return "segmented"
    return "failed"


def count_image(payload: dict[str, Any]) -> str:
    """Counting job: detect and count PNPs, publish tables, QC image and manifest."""
    ctx, job = current_context(), ImageJob.from_json(payload)
    with reporting(ctx, job, "counting"):
        if already_published(ctx, job):
            return _done(ctx, job)
        ctx.book.set_status(job.dataset_id, job.image_id, JobStatus.READING)
        handoff = unpack_handoff(ctx.store.read_bytes(job.handoff_key))
        with opened_image(ctx, job) as image:
            ctx.book.set_status(job.dataset_id, job.image_id, JobStatus.COUNTING)
            run = count(ctx, job, image, handoff)
            ctx.book.set_status(job.dataset_id, job.image_id, JobStatus.PUBLISHING)
            publish(ctx, job, image, run, handoff)
        return _done(ctx, job)
    return "failed"


def run_image(ctx: StageContext, job: ImageJob) -> JobStatus:
    """Both stages in this process, no queue (``overnight worker run-image``, one pod per image).

    Returns the image's final status; a bad image raises :class:`InvalidImageError`.
    """
    if already_published(ctx, job):
        return JobStatus.DONE
    with opened_image(ctx, job) as image:
        if is_staged(ctx, job.pipeline):
            handoff = segment(ctx, job, image)
            publish(ctx, job, image, count(ctx, job, image, handoff), handoff)
        else:
            publish(ctx, job, image, analyse_whole(ctx, job, image))
    return JobStatus.DONE


def _done(ctx: StageContext, job: ImageJob) -> str:
    ctx.store.delete(job.handoff_key)
    _finalise(ctx, job, JobStatus.DONE)
    return "done"


def _fail(ctx: StageContext, job: ImageJob, reason: str) -> None:
    _finalise(ctx, job, JobStatus.FAILED, reason)


def _finalise(ctx: StageContext, job: ImageJob, status: JobStatus, reason: str = "") -> None:
    """Mark the image final; the summary is written first if it is the dataset's last image.

    When the last two images finish at once neither sees the other final beforehand, so the
    check runs again after the status change: the later of the two then writes the summary.
    """
    written = finish_dataset(ctx, job.dataset_id, finishing=job.image_id, final_status=status)
    ctx.book.set_status(job.dataset_id, job.image_id, status, reason)
    if not written:
        finish_dataset(ctx, job.dataset_id)


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
    except InvalidImageError as err:
        logger.warning("bad image: %s", err.problem, extra=extra)
        _fail(ctx, job, err.problem)
    except TRANSIENT_ERRORS as err:
        if _retries_left() > 0:
            logger.warning("transient error, will retry: %s", err, extra=extra)
            ctx.book.set_status(
                job.dataset_id, job.image_id, JobStatus.QUEUED, f"retrying after: {err}"
            )
        else:
            logger.error("transient error, no retry left: %s", err, extra=extra)
            _fail(ctx, job, f"gave up after retries: {type(err).__name__}: {err}")
        raise
    except OvernightError as err:
        logger.error("image failed: %s", err, extra=extra)
        _fail(ctx, job, str(err))
    except Exception as err:  # a bug on one image must not block its dataset
        logger.exception("unexpected error", extra=extra)
        _fail(ctx, job, f"internal error: {type(err).__name__}: {err}")
    finally:
        ctx.book.record_duration(stage, time.perf_counter() - start)
