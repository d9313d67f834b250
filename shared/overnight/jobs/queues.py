"""The two RQ queues and how an image's stage is put on one (JSON payloads, fixed job ids).

``segmentation`` jobs go to ``overnight-segmentation`` (``overnight worker segmentation``),
``counting`` jobs to ``overnight-pnp`` (``overnight worker pnp``). A job's id is derived from
the dataset and image (:func:`~overnight.jobs.ids.job_id_for`), so enqueueing an image whose
job is still waiting or running is recognised and does nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis import Redis
from redis.client import Pipeline
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.job import JobStatus as RQStatus
from rq.serializers import JSONSerializer

from overnight.errors import TransientError
from overnight.jobs.ids import job_id_for
from overnight.jobs.payload import ImageJob
from overnight.jobs.settings import JobSettings

logger = logging.getLogger(__name__)

SEGMENTATION_QUEUE = "overnight-segmentation"
COUNTING_QUEUE = "overnight-pnp"
#: Pipeline stage → the queue its jobs wait in.
STAGE_QUEUES = {"segmentation": SEGMENTATION_QUEUE, "counting": COUNTING_QUEUE}
#: Worker kind (CLI name) → the stage it runs.
WORKER_STAGES = {"segmentation": "segmentation", "pnp": "counting"}
#: Stage → the job function (imported by the worker only, so the API never loads the pipeline).
STAGE_TASKS = {
    "segmentation": "overnight.jobs.tasks.segment_image",
    "counting": "overnight.jobs.tasks.count_image",
}
#: Key prefix of the per-job lock held while enqueueing, and how long it may be held (ms).
LOCK_PREFIX = "overnight:enqueueing:"
ENQUEUE_LOCK_MS = 5_000
LOCK_POLL_S = 0.02
#: RQ states in which a job will still run (or is running): enqueueing it again is a duplicate.
_PENDING = {RQStatus.QUEUED, RQStatus.STARTED, RQStatus.SCHEDULED, RQStatus.DEFERRED}


def stage_queue(redis: Redis, stage: str) -> Queue:
    """The RQ queue of ``stage``, with the JSON serializer."""
    return Queue(STAGE_QUEUES[stage], connection=redis, serializer=JSONSerializer)


def fetch_job(redis: Redis, job_id: str) -> Job | None:
    """The RQ job ``job_id``, or None when it does not exist (any more)."""
    try:
        return Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
    except NoSuchJobError:
        return None


def enqueue_stage(
    redis: Redis,
    stage: str,
    image: ImageJob,
    settings: JobSettings,
    *,
    again: bool = False,
    with_enqueue: Callable[[Pipeline], object] | None = None,
) -> Job | None:
    """Put ``stage`` of ``image`` on its queue unless that job is already waiting or running.

    Returns the job enqueued now, or None when it was pending already. A short lock per job id
    makes the check-then-enqueue atomic across processes; a caller that finds it held waits
    for it (a holder that died lets it expire after :data:`ENQUEUE_LOCK_MS`) and checks again.
    ``again=True`` (a retry of a failed image) replaces a finished
    or failed job of the same id. ``with_enqueue`` adds commands to the transaction that
    enqueues (e.g. a counter), so they happen if and only if the job is put on the queue.
    Transient errors are retried ``settings.retry_max`` times with a growing delay.
    """
    job_id = job_id_for(stage, image.dataset_id, image.image_id)
    lock = f"{LOCK_PREFIX}{job_id}"
    deadline = time.monotonic() + 2 * ENQUEUE_LOCK_MS / 1000
    while not redis.set(lock, "1", nx=True, px=ENQUEUE_LOCK_MS):
        if time.monotonic() > deadline:
            raise TransientError(f"could not take the enqueue lock of job {job_id}; try again")
        time.sleep(LOCK_POLL_S)
    try:
        existing = fetch_job(redis, job_id)
        if existing is not None:
            status = existing.get_status(refresh=False)
            if status in _PENDING or (status == RQStatus.FINISHED and not again):
                logger.info("job %s is %s already", job_id, status, extra={"job_id": job_id})
                return None
            existing.delete()
        with redis.pipeline() as pipe:
            job = stage_queue(redis, stage).enqueue_call(
                STAGE_TASKS[stage],
                args=(image.to_json(),),
                job_id=job_id,
                timeout=settings.job_timeout_s,
                result_ttl=settings.result_ttl_s,
                failure_ttl=settings.result_ttl_s,
                retry=_retry(settings),
                description=f"{stage} {image.dataset_id}/{image.image_id}",
                pipeline=pipe,
            )
            if with_enqueue is not None:
                with_enqueue(pipe)
            pipe.execute()
        return job
    finally:
        redis.delete(lock)


def _retry(settings: JobSettings) -> Retry | None:
    if not settings.retry_max:
        return None
    return Retry(max=settings.retry_max, interval=settings.retry_intervals_s())


def queue_depths(redis: Redis) -> dict[str, int]:
    """Queue name → jobs waiting."""
    return {name: stage_queue(redis, stage).count for stage, name in STAGE_QUEUES.items()}
