"""Queue upkeep every worker runs in a thread: re-queue abandoned and stranded jobs, retries.

RQ keeps each running job in the queue's ``StartedJobRegistry`` with an expiry score that the
worker's heartbeat pushes forward (:class:`~overnight.jobs.worker.OvernightWorker` beats every
``lease_s / 3`` while a job runs, so a long job is never declared dead). When a worker is
killed its beats stop, the entry expires ``lease_s`` later, and :func:`requeue_abandoned` puts
the job back at the *back* of its queue, so an image that kills every worker it meets (one
that needs more memory than the container has) never holds up the images behind it. Each
death is counted per job: after ``max_deaths`` re-queues the next death fails the job, and
the image, with the reason "worker died N times (memory limit?)". :func:`requeue_stranded`
re-queues (at the front) a job a worker took off the queue but never started (killed, or
Redis gone, in between: RQ leaves its id in ``<queue>:intermediate`` and only looks at it
every ten minutes). :func:`release_due_retries`
moves retries whose backoff has passed from the ``ScheduledJobRegistry`` back to their queue
(RQ's scheduler process does the same; doing it here needs no extra process). All are safe to
run in every worker at once: each entry is claimed by exactly one caller (``ZREM``/``LREM``
return 1 once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import cast

from redis import Redis
from rq.job import Job
from rq.job import JobStatus as RQStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.utils import parse_composite_key

from overnight.jobs.connection import REDIS_TRANSIENT_ERRORS
from overnight.jobs.queues import STAGE_QUEUES, fetch_job, stage_queue
from overnight.jobs.state import JobBook

logger = logging.getLogger(__name__)

#: Key prefix recording when a job id was first seen stranded in an intermediate queue.
STRANDED_PREFIX = "overnight:stranded:"
#: Called with a job that killed its workers too often and the number of deaths.
OnPoison = Callable[[Job, int], None]


def died_reason(deaths: int) -> str:
    """The failure reason of a job whose worker died ``deaths`` times."""
    return (
        f"worker died {deaths} times (memory limit?): the image needs more memory than a "
        "worker has; raise the worker's memory limit or lower OVERNIGHT_MAX_WORKING_SET_GB"
    )


def requeue_abandoned(
    redis: Redis,
    now: float | None = None,
    *,
    max_deaths: int | None = None,
    on_poison: OnPoison | None = None,
) -> list[str]:
    """Re-queue, at the back, every running job whose heartbeat lease expired; return their ids.

    A job whose workers died more than ``max_deaths`` times (None: no limit) is failed
    instead, in RQ and through ``on_poison`` (which fails the image with its reason).
    """
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
            deaths = book.count_death(job_id)
            if max_deaths is not None and deaths > max_deaths:
                _fail_dead(redis, job, deaths, on_poison)
                continue
            queue.enqueue_job(job, at_front=False)
            book.record_requeue(job_id, float(expired_at), time.time())
            logger.warning(
                "job %s was abandoned by a dead worker; re-queued", job_id, extra={"job_id": job_id}
            )
            requeued.append(job_id)
    return requeued


def _fail_dead(redis: Redis, job: Job, deaths: int, on_poison: OnPoison | None) -> None:
    """Fail a job that killed its workers ``deaths`` times: RQ's record, then the image's."""
    reason = died_reason(deaths)
    FailedJobRegistry(job.origin, connection=redis, serializer=job.serializer).add(
        job, ttl=job.failure_ttl, exc_string=reason
    )
    job.set_status(RQStatus.FAILED)
    logger.error("job %s: %s; failed", job.id, reason, extra={"job_id": job.id})
    if on_poison is not None:
        on_poison(job, deaths)


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
            if redis.lpos(queue.key, job_id) is not None:
                continue  # re-queued already (its worker died after starting it): only tidy
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

    def __init__(
        self,
        redis: Redis,
        interval_s: float,
        stranded_grace_s: float,
        max_deaths: int | None = None,
        on_poison: OnPoison | None = None,
    ) -> None:
        super().__init__(name="overnight-upkeep", daemon=True)
        self.redis = redis
        self.interval_s = interval_s
        self.stranded_grace_s = stranded_grace_s
        self.max_deaths = max_deaths
        self.on_poison = on_poison
        self.stopped = threading.Event()

    def run(self) -> None:
        """Run every ``interval_s`` until :meth:`stop`; Redis outages are waited out."""
        while not self.stopped.wait(self.interval_s):
            try:
                requeue_abandoned(self.redis, max_deaths=self.max_deaths, on_poison=self.on_poison)
                requeue_stranded(self.redis, grace_s=self.stranded_grace_s)
                release_due_retries(self.redis)
            except REDIS_TRANSIENT_ERRORS as err:
                logger.warning("queue upkeep skipped: Redis unavailable (%s)", err)
            except Exception:  # the thread must outlive a bad job record
                logger.exception("queue upkeep failed")

    def stop(self) -> None:
        """Ask the thread to end after its current round."""
        self.stopped.set()
