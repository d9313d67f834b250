"""Job and dataset states, as the API and the QC web show them.

An image moves ``queued → reading → segmenting → counting → publishing → done | failed``;
a dataset's state follows from its images' counts (:func:`dataset_state`).

>>> dataset_state(StatusCounts(queued=0, running=0, done=3, failed=1))
<DatasetState.PARTIAL: 'partial'>
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class JobStatus(StrEnum):
    """Where one image is in its lifecycle."""

    QUEUED = "queued"
    READING = "reading"
    SEGMENTING = "segmenting"
    COUNTING = "counting"
    PUBLISHING = "publishing"
    DONE = "done"
    FAILED = "failed"

    @property
    def is_running(self) -> bool:
        """A worker holds the image now."""
        return self in RUNNING_STATUSES

    @property
    def is_final(self) -> bool:
        """Nothing more will happen without a retry."""
        return self in (JobStatus.DONE, JobStatus.FAILED)


RUNNING_STATUSES = frozenset(
    {JobStatus.READING, JobStatus.SEGMENTING, JobStatus.COUNTING, JobStatus.PUBLISHING}
)


class DatasetState(StrEnum):
    """A dataset's overall state (the API contract)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    PARTIAL = "partial"


class StatusCounts(BaseModel):
    """How many images of a dataset are queued, running, done and failed."""

    model_config = ConfigDict(frozen=True)

    queued: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        """Images counted."""
        return self.queued + self.running + self.done + self.failed

    @property
    def finished(self) -> bool:
        """Every image is done or failed (and there is at least one)."""
        return self.total > 0 and self.queued == 0 and self.running == 0


def count_statuses(statuses: Iterable[JobStatus]) -> StatusCounts:
    """Tally image statuses into :class:`StatusCounts`."""
    tally = {"queued": 0, "running": 0, "done": 0, "failed": 0}
    for status in statuses:
        bucket = "running" if status.is_running else status.value
        tally[bucket] += 1
    return StatusCounts(**tally)


def dataset_state(counts: StatusCounts) -> DatasetState:
    """A dataset's state from its counts.

    ``queued`` until a worker starts (also for a dataset with no image yet), ``running`` while
    anything is queued or running after the start, then ``done`` (all done), ``failed`` (all
    failed) or ``partial`` (some of each).
    """
    if counts.total == 0:
        return DatasetState.QUEUED
    if counts.running or counts.queued:
        started = counts.running or counts.done or counts.failed
        return DatasetState.RUNNING if started else DatasetState.QUEUED
    if counts.failed == 0:
        return DatasetState.DONE
    return DatasetState.FAILED if counts.done == 0 else DatasetState.PARTIAL
