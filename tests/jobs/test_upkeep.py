"""Heartbeat leases and the re-queueing of abandoned jobs, with real workers and SIGKILL."""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.job import JobStatus as RQStatus
from rq.serializers import JSONSerializer

from fixtures_redis import RedisServer, ServiceProcess, service_env, wait_for
from overnight.jobs.connection import connect
from overnight.jobs.queues import fetch_job, stage_queue
from overnight.jobs.settings import JobSettings
from overnight.jobs.sources import list_images, open_source
from overnight.jobs.stages import StageContext
from overnight.jobs.state import JobBook
from overnight.jobs.submit import Submitter
from overnight.jobs.tasks import fail_dead_job, use_context
from overnight.jobs.upkeep import release_due_retries, requeue_abandoned, requeue_stranded
from overnight.jobs.worker import build_worker
from overnight.storage import open_store

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


def _start_as_dead_worker(redis: Redis, settings: JobSettings, queue: Queue) -> Job:
    """Take the next job as a worker that then dies (its lease runs out, nobody beats)."""
    worker = build_worker(StageContext(settings, redis), "segmentation")
    worker.register_birth()
    taken = Queue.dequeue_any([queue], None, connection=redis, serializer=JSONSerializer)
    assert taken is not None
    job = taken[0]
    worker.prepare_execution(job)
    with redis.pipeline() as pipe:
        job.prepare_for_execution(worker.name, pipe)
        pipe.execute()
    return job


def test_a_poison_image_goes_to_the_back_and_fails_after_its_retries(
    job_settings: JobSettings, nas: Path
) -> None:
    """Issue 13 #2: a job whose worker dies is re-queued at the back, then failed."""
    redis = connect(job_settings.redis_url)
    submitter = Submitter(redis, open_store(job_settings.storage_url, job_settings), job_settings)
    record, _ = submitter.register((nas / "plate1").as_uri(), "cytometry-classical")
    images = list_images(open_source(record.source, job_settings))
    submitter.enqueue_images(record, images)
    queue = stage_queue(redis, "segmentation")
    poison_id = queue.job_ids[0]
    use_context(StageContext(job_settings, redis))
    book = JobBook(redis)
    later = time.time()
    for death in range(1, job_settings.retry_max + 2):
        job = _start_as_dead_worker(redis, job_settings, queue)
        assert job.id == poison_id
        later += job_settings.lease_s + 1
        requeue_abandoned(
            redis, now=later, max_deaths=job_settings.retry_max, on_poison=fail_dead_job
        )
        if death == 1:  # re-queued at the back: every good image is taken before it again
            assert queue.job_ids[-1] == poison_id and len(queue.job_ids) == len(images)
            good_ids = queue.job_ids[:-1]
            for good_id in good_ids:
                queue.remove(good_id)  # (as if run: only the order is under test)
    assert queue.job_ids == []
    assert fetch_job(redis, poison_id).get_status() == RQStatus.FAILED
    poison = next(s for s in book.images(record.id) if s.job_id == poison_id)
    assert poison.status == "failed"
    assert f"worker died {job_settings.retry_max + 1} times (memory limit?)" in poison.reason
    assert len(book.requeues()) == job_settings.retry_max
