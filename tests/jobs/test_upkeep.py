"""Heartbeat leases and the re-queueing of abandoned jobs, with real workers and SIGKILL."""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rq import Queue
from rq.job import JobStatus as RQStatus
from rq.serializers import JSONSerializer

from fixtures_redis import RedisServer, ServiceProcess, service_env, wait_for
from overnight.jobs.connection import connect
from overnight.jobs.queues import fetch_job, stage_queue
from overnight.jobs.settings import JobSettings
from overnight.jobs.stages import StageContext
from overnight.jobs.state import JobBook
from overnight.jobs.upkeep import release_due_retries, requeue_abandoned, requeue_stranded
from overnight.jobs.worker import build_worker

Start = Callable[[list[str], dict[str, str]], ServiceProcess]


def test_an_expired_lease_is_requeued_once_without_spending_a_retry(
    job_settings: JobSettings,
) -> None:
    redis = connect(job_settings.redis_url)
    queue = stage_queue(redis, "segmentation")
    job = queue.enqueue("time.sleep", 0, job_id="sleepy", retry=None)
    worker = build_worker(StageContext(job_settings, redis), "segmentation")
    worker.register_birth()
    taken = Queue.dequeue_any([queue], None, connection=redis, serializer=JSONSerializer)
    assert taken is not None and taken[0].id == "sleepy"
    worker.prepare_execution(job)  # what the worker does when it takes a job: lease of lease_s
    with redis.pipeline() as pipe:
        job.prepare_for_execution(worker.name, pipe)
        pipe.execute()
    assert job.get_status() == RQStatus.STARTED and queue.count == 0

    assert requeue_abandoned(redis) == [], "a job within its lease is left alone"
    later = time.time() + job_settings.lease_s + 1
    assert requeue_abandoned(redis, now=later) == ["sleepy"]
    assert requeue_abandoned(redis, now=later) == [], "each abandoned execution is requeued once"
    assert job.get_status() == RQStatus.QUEUED and queue.job_ids == ["sleepy"]
    assert [r["job_id"] for r in JobBook(redis).requeues()] == ["sleepy"]


def test_a_job_longer_than_its_lease_is_never_declared_dead(
    redis_server: RedisServer, tmp_path: Path, services: Start
) -> None:
    env = service_env(
        redis_url=redis_server.url,
        storage_url=tmp_path.as_uri(),
        lease_s="2",
        pipeline="cytometry-classical",
    )
    redis = connect(redis_server.url)
    job = stage_queue(redis, "segmentation").enqueue(
        "time.sleep", 7, job_id="long-job", job_timeout=60
    )
    services(["worker", "segmentation"], env)
    wait_for(lambda: job.get_status() == RQStatus.STARTED, 60, "the worker to start the job")
    while job.get_status() == RQStatus.STARTED:
        assert requeue_abandoned(redis) == [], "the heartbeat must keep the lease alive"
        time.sleep(0.2)
    assert job.get_status() == RQStatus.FINISHED
    assert JobBook(redis).requeues() == []


def test_a_killed_workers_job_is_rerun_within_seconds(
    redis_server: RedisServer, tmp_path: Path, services: Start
) -> None:
    env = service_env(
        redis_url=redis_server.url,
        storage_url=tmp_path.as_uri(),
        lease_s="2",
        pipeline="cytometry-classical",
    )
    redis = connect(redis_server.url)
    job = stage_queue(redis, "segmentation").enqueue(
        "time.sleep", 4, job_id="killed-job", job_timeout=60
    )
    first = services(["worker", "segmentation"], env)
    wait_for(lambda: job.get_status() == RQStatus.STARTED, 60, "the first worker to start the job")
    victim = job.worker_name
    services(["worker", "segmentation"], env)
    first.kill()
    killed_at = time.time()
    wait_for(
        lambda: (fetch_job(redis, "killed-job").worker_name or victim) != victim,
        30,
        "another worker to take the job",
    )
    rerun_after_s = time.time() - killed_at
    wait_for(lambda: job.get_status() == RQStatus.FINISHED, 30, "the re-run to finish")
    assert rerun_after_s < 2 * 2 + 3, f"re-run took {rerun_after_s:.1f} s"
    assert [r["job_id"] for r in JobBook(redis).requeues()] == ["killed-job"]


def test_retries_are_released_when_their_backoff_is_over(job_settings: JobSettings) -> None:
    redis = connect(job_settings.redis_url)
    queue = stage_queue(redis, "segmentation")
    job = queue.enqueue("time.sleep", 0, job_id="later")
    queue.dequeue_any([queue], None, connection=redis, serializer=JSONSerializer)
    registry = queue.scheduled_job_registry
    registry.schedule(job, datetime.now(UTC))
    assert release_due_retries(redis, now=time.time() + 1) == ["later"]
    assert queue.job_ids == ["later"] and registry.count == 0


def test_a_job_taken_but_never_started_is_requeued_after_the_grace(
    job_settings: JobSettings,
) -> None:
    redis = connect(job_settings.redis_url)
    queue = stage_queue(redis, "segmentation")
    queue.enqueue("time.sleep", 0, job_id="stranded")
    # What a single-queue worker does as it takes a job: the id moves to the intermediate list.
    assert Queue.lmove(redis, queue.key, timeout=None) is not None
    assert queue.count == 0
    now = time.time()
    assert requeue_stranded(redis, grace_s=2, now=now) == [], "first sighting starts the grace"
    assert requeue_stranded(redis, grace_s=2, now=now + 1) == []
    assert requeue_stranded(redis, grace_s=2, now=now + 3) == ["stranded"]
    assert queue.job_ids == ["stranded"] and redis.llen(f"{queue.key}:intermediate") == 0
    assert requeue_stranded(redis, grace_s=2, now=now + 10) == []
