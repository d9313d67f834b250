"""The queue worker: one process, one job at a time, models loaded once, a heartbeat lease.

:class:`OvernightWorker` is RQ's ``SimpleWorker`` (jobs run in the worker process itself, so
the :class:`~overnight.jobs.stages.StageContext` built at start-up — prepared pipelines,
loaded models, store clients — serves every job) with two changes for long jobs and dead
workers: a running job's lease is ``lease_s`` and a heartbeat thread renews it every
``lease_s / 3`` while the job runs, and an :class:`~overnight.jobs.upkeep.Upkeep` thread
re-queues jobs whose lease expired (their worker was killed) within about ``lease_s``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from types import FrameType, TracebackType
from typing import Any

from rq import SimpleWorker
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.worker import WorkerStatus

from overnight.jobs.connection import REDIS_TRANSIENT_ERRORS, check_redis, connect
from overnight.jobs.queues import STAGE_QUEUES, WORKER_STAGES, stage_queue
from overnight.jobs.settings import JobSettings
from overnight.jobs.stages import StageContext
from overnight.jobs.tasks import fail_dead_job, use_context
from overnight.jobs.upkeep import Upkeep, requeue_abandoned

logger = logging.getLogger(__name__)

#: Seconds between reconnection attempts after Redis went away.
RECONNECT_PAUSE_S = 1.0


class _JobHeartbeat:
    """Renews a running job's lease (and the worker's) every ``lease_s / 3`` in a thread."""

    def __init__(self, worker: OvernightWorker, job: Job, execution: Execution) -> None:
        self.worker, self.job, self.execution = worker, job, execution
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{job.id}", daemon=True)

    def __enter__(self) -> _JobHeartbeat:
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)

    def _beat(self) -> None:
        lease = self.worker.lease_s
        while not self.stopped.wait(lease / 3):
            try:
                with self.worker.connection.pipeline() as pipe:
                    self.execution.heartbeat(self.job.started_job_registry, lease, pipeline=pipe)
                    pipe.expire(self.worker.key, lease + 60)
                    pipe.execute()
            except REDIS_TRANSIENT_ERRORS as err:
                logger.warning("heartbeat of job %s failed: %s", self.job.id, err)


class OvernightWorker(SimpleWorker):
    """RQ ``SimpleWorker`` with a short, heartbeat-renewed job lease (see the module doc)."""

    lease_s: int = 10
    #: Worker deaths a job may cause before it fails (``JobSettings.retry_max``).
    max_deaths: int | None = None

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """A running job's lease: renewed by the heartbeat thread, expires if the worker dies."""
        return self.lease_s

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run ``job`` in this process while a thread keeps its lease alive."""
        execution = self.prepare_execution(job)
        with _JobHeartbeat(self, job, execution):
            self.perform_job(job, queue, execution)
        self.set_state(WorkerStatus.IDLE)

    def clean_registries(self) -> None:
        """Re-queue abandoned jobs first: RQ's own clean-up would fail them (or spend a retry)."""
        requeue_abandoned(self.connection, max_deaths=self.max_deaths, on_poison=fail_dead_job)
        super().clean_registries()

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """Remember that a stop was asked for (the run loop must not restart), then stop."""
        self.stop_asked = True
        super().request_stop(signum, frame)


def worker_name(kind: str) -> str:
    """A unique, readable worker name: ``<kind>-<host>-<pid>-<random>``."""
    return f"{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def build_worker(context: StageContext, kind: str, **options: Any) -> OvernightWorker:
    """An RQ worker of ``kind`` (``segmentation``, ``pnp`` or ``all``) over the context's Redis.

    ``all`` takes counting jobs before segmentation jobs: images already segmented finish
    first, and a re-queued image that kills its workers never holds back the counting of
    the others.
    """
    stages = list(reversed(STAGE_QUEUES)) if kind == "all" else [WORKER_STAGES[kind]]
    worker = OvernightWorker(
        [stage_queue(context.redis, s) for s in stages],
        name=worker_name(kind),
        connection=context.redis,
        serializer=JSONSerializer,
        worker_ttl=max(20, 3 * context.settings.lease_s),
        **options,
    )
    worker.lease_s = context.settings.lease_s
    worker.max_deaths = context.settings.retry_max
    return worker


def run_worker(
    settings: JobSettings, kind: str, *, burst: bool = False, max_jobs: int | None = None
) -> int:
    """Work on the queue(s) of ``kind`` until stopped (or, with ``burst``, until they are empty).

    Loads the default pipeline before the first job, checks Redis (refusing eviction), and
    reconnects when Redis goes away instead of exiting. Returns how many worker loops ran a job.
    """
    context = StageContext(settings, connect(settings.redis_url))
    use_context(context)
    check_redis(context.redis)
    context.warm(settings.pipeline)
    upkeep = Upkeep(
        context.redis,
        interval_s=max(0.5, settings.lease_s / 4),
        stranded_grace_s=settings.lease_s,
        max_deaths=settings.retry_max,
        on_poison=fail_dead_job,
    )
    upkeep.start()
    runs = 0
    try:
        while True:
            worker = build_worker(context, kind)
            worker.stop_asked = False
            try:
                worked = worker.work(
                    burst=burst, max_jobs=max_jobs, logging_level=settings.log_level
                )
            except REDIS_TRANSIENT_ERRORS as err:
                logger.warning("Redis unavailable (%s); reconnecting", err)
                worked = False
            runs += int(worked)
            if worker.stop_asked or burst or max_jobs is not None:
                return runs
            logger.warning("worker loop ended (Redis unavailable?); reconnecting")
            _wait_for_redis(context)
    finally:
        upkeep.stop()


def _wait_for_redis(context: StageContext) -> None:
    while True:
        try:
            context.redis.ping()
            return
        except REDIS_TRANSIENT_ERRORS:
            time.sleep(RECONNECT_PAUSE_S)
