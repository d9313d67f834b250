"""Prometheus metrics, read from Redis at scrape time (every API replica reports the same).

- ``overnight_queue_depth{queue}``: jobs waiting;
- ``overnight_jobs_running{queue}``: jobs a worker holds (RQ's started registry);
- ``overnight_images{status}``: images of all datasets by lifecycle status;
- ``overnight_job_duration_seconds{stage}``: a summary (count, sum) of job durations;
- ``overnight_abandoned_jobs_requeued``: jobs re-queued after their worker died (recent).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector
from redis import Redis
from rq.registry import StartedJobRegistry

from overnight.jobs.queues import STAGE_QUEUES, stage_queue
from overnight.jobs.state import JobBook
from overnight.jobs.status import JobStatus


class QueueCollector(Collector):
    """Collects the metrics above from Redis on each scrape."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def collect(self) -> Iterator[Metric]:
        """Yield one metric family per metric."""
        book = JobBook(self.redis)
        depth = GaugeMetricFamily(
            "overnight_queue_depth", "Jobs waiting in a queue.", labels=["queue"]
        )
        running = GaugeMetricFamily(
            "overnight_jobs_running", "Jobs held by a worker.", labels=["queue"]
        )
        for stage, name in STAGE_QUEUES.items():
            queue = stage_queue(self.redis, stage)
            depth.add_metric([name], queue.count)
            # zcard, not registry.count: counting through RQ would also run its clean-up.
            running.add_metric([name], self.redis.zcard(StartedJobRegistry(queue=queue).key))
        yield depth
        yield running
        statuses: Counter[str] = Counter()
        for dataset_id in book.dataset_ids():
            statuses.update(s.status.value for s in book.images(dataset_id))
        images = GaugeMetricFamily(
            "overnight_images", "Images by lifecycle status.", labels=["status"]
        )
        for status in JobStatus:
            images.add_metric([status.value], statuses.get(status.value, 0))
        yield images
        durations = SummaryMetricFamily(
            "overnight_job_duration_seconds", "Duration of queue jobs.", labels=["stage"]
        )
        for stage, (count, total_s) in sorted(book.durations().items()):
            durations.add_metric([stage], count_value=count, sum_value=total_s)
        yield durations
        requeued = CounterMetricFamily(
            "overnight_abandoned_jobs_requeued", "Jobs re-queued after their worker died (recent)."
        )
        requeued.add_metric([], len(book.requeues()))
        yield requeued
