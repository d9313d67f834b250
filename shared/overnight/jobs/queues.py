"""The two RQ queues and how an image's stage is put on one (JSON payloads, fixed job ids).

``segmentation`` jobs go to ``overnight-segmentation`` (``overnight worker segmentation``),
``counting`` jobs to ``overnight-pnp`` (``overnight worker pnp``). A job's id is derived from
the dataset and image (:func:`~overnight.jobs.ids.job_id_for`), so enqueueing an image whose
job is still waiting or running is recognised and does nothing.
"""

from __future__ import annotations

import logging

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.job import JobStatus as RQStatus
from rq.serializers import JSONSerializer

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
    redis: Redis, stage: str, image: ImageJob, settings: JobSettings, *, again: bool = False
) -> Job:
    """Put ``stage`` of ``image`` on its queue unless that job is already waiting or running.

    ``again=True`` (a retry of a failed image) replaces a finished or failed job of the same id.
    Transient errors are retried ``settings.retry_max`` times with a growing delay.
    """
    job_id = job_id_for(stage, image.dataset_id, image.image_id)
    existing = fetch_job(redis, job_id)
    if existing is not None:
        status = existing.get_status(refresh=False)
        if status in _PENDING or (status == RQStatus.FINISHED and not again):
            logger.info(
                "job %s is %s already; not enqueued again", job_id, status, extra={"job_id": job_id}
            )
            return existing
        existing.delete()
    retry = (
        Retry(max=settings.retry_max, interval=settings.retry_intervals_s())
        if settings.retry_max
        else None
    )
    return stage_queue(redis, stage).enqueue(
        STAGE_TASKS[stage],
        image.to_json(),
        job_id=job_id,
        job_timeout=settings.job_timeout_s,
        result_ttl=settings.result_ttl_s,
        failure_ttl=settings.result_ttl_s,
        retry=retry,
        description=f"{stage} {image.dataset_id}/{image.image_id}",
    )


def queue_depths(redis: Redis) -> dict[str, int]:
    """Queue name → jobs waiting."""
    return {name: stage_queue(redis, stage).count for stage, name in STAGE_QUEUES.items()}
