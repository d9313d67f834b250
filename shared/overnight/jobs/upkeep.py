"""Queue upkeep every worker runs in a thread: re-queue abandoned and stranded jobs, retries.

RQ keeps each running job in the queue's ``StartedJobRegistry`` with an expiry score that the
worker's heartbeat pushes forward (:class:`~overnight.jobs.worker.OvernightWorker` beats every
``lease_s / 3`` while a job runs, so a long job is never declared dead). When a worker is
killed its beats stop, the entry expires ``lease_s`` later, and :func:`requeue_abandoned` puts
the job back at the front of its queue — without spending one of its retries, since a killed
worker says nothing about the image. :func:`requeue_stranded` does the same for a job a worker
took off the queue but never started (killed, or Redis gone, in between: RQ leaves its id in
``<queue>:intermediate`` and only looks at it every ten minutes). :func:`release_due_retries`
moves retries whose backoff has passed from the ``ScheduledJobRegistry`` back to their queue
(RQ's scheduler process does the same; doing it here needs no extra process). All are safe to
run in every worker at once: each entry is claimed by exactly one caller (``ZREM``/``LREM``
return 1 once).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import cast

from redis import Redis
from rq.job import JobStatus as RQStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.utils import parse_composite_key

from overnight.jobs.connection import REDIS_TRANSIENT_ERRORS
from overnight.jobs.queues import STAGE_QUEUES, fetch_job, stage_queue
from overnight.jobs.state import JobBook

logger = logging.getLogger(__name__)

#: Key prefix recording when a job id was first seen stranded in an intermediate queue.
STRANDED_PREFIX = "overnight:stranded:"


def requeue_abandoned(redis: Redis, now: float | None = None) -> list[str]:
    """Re-queue every running job whose heartbeat lease expired; return their ids."""
    now = time.time() if now is None else now
    requeued = []
    book = JobBook(redis)
    for stage in STAGE_QUEUES:
        queue = stage_queue(redis, stage)
        registry = StartedJobRegistry(queue=queue)
        expired = cast(
            list[tuple[bytes, float]], redis.zrangebyscore(registry.key, 0, now, withscores=True)
        )
        for entry, expired_at in expired:
            if not redis.zrem(registry.key, entry):
                continue  # another worker claimed it
            job_id, _execution = parse_composite_key(entry.decode())
            job = fetch_job(redis, job_id)
            if job is None or job.get_status() != RQStatus.STARTED:
                continue
            queue.enqueue_job(job, at_front=True)
            book.record_requeue(job_id, float(expired_at), time.time())
            logger.warning(
                "job %s was abandoned by a dead worker; re-queued", job_id, extra={"job_id": job_id}
            )
            requeued.append(job_id)
    return requeued


def requeue_stranded(redis: Redis, grace_s: float, now: float | None = None) -> list[str]:
    """Re-queue jobs a worker popped but never started (it died, or Redis went away, between).

    RQ moves a job id from the queue to ``<queue>:intermediate`` as a worker takes it, and
    only then registers it as started. A job id still there, not started, ``grace_s`` after
    this function first saw it, was stranded: it goes back to the front of its queue.
    """
    now = time.time() if now is None else now
    requeued = []
    for stage in STAGE_QUEUES:
        queue = stage_queue(redis, stage)
        intermediate = f"{queue.key}:intermediate"
        started = {
            e.decode().split(":", 1)[0]
            for e in cast(list[bytes], redis.zrange(StartedJobRegistry(queue=queue).key, 0, -1))
        }
        for raw in cast(list[bytes], redis.lrange(intermediate, 0, -1)):
            job_id = raw.decode()
            seen_key = f"{STRANDED_PREFIX}{job_id}"
            if job_id in started:
                continue
            redis.set(seen_key, repr(now), nx=True, ex=3600)
            first_seen = float(cast(bytes, redis.get(seen_key) or repr(now).encode()))
            if now - first_seen < grace_s or not redis.lrem(intermediate, 1, job_id):
                continue
            redis.delete(seen_key)
            job = fetch_job(redis, job_id)
            if job is None or job.get_status() not in (RQStatus.QUEUED, RQStatus.STARTED):
                continue
            queue.enqueue_job(job, at_front=True)
            JobBook(redis).record_requeue(job_id, first_seen, time.time())
            logger.warning(
                "job %s was taken but never started; re-queued", job_id, extra={"job_id": job_id}
            )
            requeued.append(job_id)
    return requeued


def release_due_retries(redis: Redis, now: float | None = None) -> list[str]:
    """Move retries whose backoff is over from the scheduled registry to their queue."""
    now = time.time() if now is None else now
    released = []
    for stage in STAGE_QUEUES:
        queue = stage_queue(redis, stage)
        registry = ScheduledJobRegistry(queue=queue)
        for job_id in registry.get_jobs_to_schedule(int(now)):
            if not redis.zrem(registry.key, job_id):
                continue
            job = fetch_job(redis, job_id)
            if job is not None:
                queue.enqueue_job(job, at_front=job.should_enqueue_at_front())
                released.append(job_id)
    return released


class Upkeep(threading.Thread):
    """A daemon thread running the functions above every ``interval_s``."""

    def __init__(self, redis: Redis, interval_s: float, stranded_grace_s: float) -> None:
        super().__init__(name="overnight-upkeep", daemon=True)
        self.redis = redis
        self.interval_s = interval_s
        self.stranded_grace_s = stranded_grace_s
        self.stopped = threading.Event()

    def run(self) -> None:
        """Run every ``interval_s`` until :meth:`stop`; Redis outages are waited out."""
        while not self.stopped.wait(self.interval_s):
            try:
                requeue_abandoned(self.redis)
                requeue_stranded(self.redis, grace_s=self.stranded_grace_s)
                release_due_retries(self.redis)
            except REDIS_TRANSIENT_ERRORS as err:
                logger.warning("queue upkeep skipped: Redis unavailable (%s)", err)
            except Exception:  # the thread must outlive a bad job record
                logger.exception("queue upkeep failed")

    def stop(self) -> None:
        """Ask the thread to end after its current round."""
        self.stopped.set()
