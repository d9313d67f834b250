"""Dataset and image state in Redis: what the API reports and what makes enqueueing once-only.

Keys (all under ``overnight:``):

- ``datasets`` — sorted set of dataset ids by creation time;
- ``dataset:<id>`` — the :class:`DatasetRecord` as JSON;
- ``dataset:<id>:images`` — hash image id → :class:`ImageState` JSON. Creating an entry
  (``HSETNX``) is the claim that lets exactly one caller enqueue the image;
- ``dataset:<id>:enqueues`` — hash image id → times it was put on the queue (a check that
  nothing is enqueued twice; only a retry adds to it);
- ``dataset:<id>:seen`` — hash source key → fingerprint (size + mtime/ETag) seen by the watcher;
- ``metrics:durations`` — hash ``<stage>:count`` / ``<stage>:sum`` of job durations (s);
- ``metrics:requeues`` — list of recent re-queues of abandoned jobs (JSON, newest first).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from redis import Redis
from redis.client import Pipeline

from overnight.jobs.status import JobStatus, StatusCounts, count_statuses

PREFIX = "overnight:"
#: Re-queue records kept for the metrics and the fault tests.
MAX_REQUEUE_RECORDS = 1000

# Move an image to a new status unless it is already done (a late duplicate must not undo it).
_SET_STATUS = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local state = cjson.decode(raw)
if state['status'] == 'done' and ARGV[2] ~= 'done' then return -1 end
state['status'] = ARGV[2]
state['reason'] = ARGV[3]
state['updated_at'] = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(state))
return 1
"""


def utc_now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class DatasetRecord(BaseModel):
    """A registered dataset, as stored in Redis and in ``results/<id>/dataset.json``."""

    model_config = ConfigDict(frozen=True)

    id: str
    source: str = Field(description="file:///… or s3://… URL, or 'upload'")
    pipeline: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: str = Field(default_factory=utc_now_iso)
    n_images: int = 0


class ImageState(BaseModel):
    """One image's place in the lifecycle, with the reason of a failure."""

    model_config = ConfigDict(frozen=True)

    image_id: str
    image_key: str
    job_id: str
    status: JobStatus = JobStatus.QUEUED
    reason: str = ""
    updated_at: float = Field(default_factory=time.time)


class JobBook:
    """Reads and writes the state kept in Redis (one instance per process is enough)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._set_status = redis.register_script(_SET_STATUS)

    # -- datasets ------------------------------------------------------------------------------

    def create_dataset(self, record: DatasetRecord) -> bool:
        """Store ``record`` unless the id exists; True if this call created it."""
        created = bool(
            self.redis.set(_key("dataset", record.id), record.model_dump_json(), nx=True)
        )
        if created:
            self.redis.zadd(_key("datasets"), {record.id: time.time()})
        return created

    def save_dataset(self, record: DatasetRecord) -> None:
        """Replace a dataset's record (e.g. its image count after uploads)."""
        self.redis.set(_key("dataset", record.id), record.model_dump_json())

    def dataset(self, dataset_id: str) -> DatasetRecord | None:
        """The record of ``dataset_id``, or None."""
        raw = self.redis.get(_key("dataset", dataset_id))
        return None if raw is None else DatasetRecord.model_validate_json(raw)

    def dataset_ids(self) -> list[str]:
        """Every dataset id, oldest first."""
        members: list[bytes] = self.redis.zrange(_key("datasets"), 0, -1)  # type: ignore[assignment]
        return [_text(v) for v in members]

    # -- images --------------------------------------------------------------------------------

    def claim_image(self, dataset_id: str, image_id: str, image_key: str, job_id: str) -> bool:
        """Record the image as queued unless known already; True means: enqueue it now."""
        state = ImageState(image_id=image_id, image_key=image_key, job_id=job_id)
        return bool(
            self.redis.hsetnx(
                _key("dataset", dataset_id, "images"), image_id, state.model_dump_json()
            )
        )

    def count_enqueue(self, dataset_id: str, image_id: str, pipe: Pipeline | None = None) -> None:
        """Record that the image's first stage was put on the queue (once, unless retried).

        Pass the pipeline that enqueues the job, so that both happen or neither does.
        """
        (pipe if pipe is not None else self.redis).hincrby(
            _key("dataset", dataset_id, "enqueues"), image_id, 1
        )

    def record_done_image(
        self, dataset_id: str, image_id: str, image_key: str, job_id: str
    ) -> bool:
        """Record an image whose result already exists as done (never enqueued)."""
        state = ImageState(
            image_id=image_id, image_key=image_key, job_id=job_id, status=JobStatus.DONE
        )
        return bool(
            self.redis.hsetnx(
                _key("dataset", dataset_id, "images"), image_id, state.model_dump_json()
            )
        )

    def record_ignored_image(
        self, dataset_id: str, image_id: str, image_key: str, reason: str
    ) -> bool:
        """Record a file that cannot be analysed as failed with ``reason`` (never enqueued).

        Replaces an earlier ignored entry for the same id (the reason may have changed), never
        an image that was queued or analysed.
        """
        key = _key("dataset", dataset_id, "images")
        state = ImageState(
            image_id=image_id,
            image_key=image_key,
            job_id="",
            status=JobStatus.FAILED,
            reason=reason,
        )
        current = self.image(dataset_id, image_id)
        if current is not None and (current.job_id or current.reason == reason):
            return False
        self.redis.hset(key, image_id, state.model_dump_json())
        return True

    def forget_image(self, dataset_id: str, image_id: str) -> None:
        """Drop an image's state (an ignored entry that became a readable image)."""
        self.redis.hdel(_key("dataset", dataset_id, "images"), image_id)

    def requeue_image(self, dataset_id: str, image_id: str) -> None:
        """Put a failed image back to ``queued`` (a deliberate retry)."""
        current = self.image(dataset_id, image_id)
        if current is None:
            return
        state = current.model_copy(
            update={"status": JobStatus.QUEUED, "reason": "", "updated_at": time.time()}
        )
        self.redis.hset(_key("dataset", dataset_id, "images"), image_id, state.model_dump_json())

    def set_status(
        self, dataset_id: str, image_id: str, status: JobStatus, reason: str = ""
    ) -> bool:
        """Move an image to ``status``; False if it is unknown or already done."""
        result = self._set_status(
            keys=[_key("dataset", dataset_id, "images")],
            args=[image_id, status.value, reason, repr(time.time())],
        )
        return int(result) == 1

    def image(self, dataset_id: str, image_id: str) -> ImageState | None:
        """One image's state, or None."""
        raw = self.redis.hget(_key("dataset", dataset_id, "images"), image_id)
        return None if raw is None else ImageState.model_validate_json(raw)

    def images(self, dataset_id: str) -> list[ImageState]:
        """Every image of a dataset, by image id."""
        raw = self.redis.hgetall(_key("dataset", dataset_id, "images"))
        return sorted(
            (ImageState.model_validate_json(v) for v in raw.values()), key=lambda s: s.image_id
        )

    def counts(self, dataset_id: str) -> StatusCounts:
        """Images queued, running, done and failed."""
        return count_statuses(s.status for s in self.images(dataset_id))

    def enqueue_counts(self, dataset_id: str) -> dict[str, int]:
        """Image id → how many times it was put on the queue."""
        raw = self.redis.hgetall(_key("dataset", dataset_id, "enqueues"))
        return {_text(k): int(v) for k, v in raw.items()}

    # -- watcher -------------------------------------------------------------------------------

    def seen_fingerprint(self, dataset_id: str, source_key: str) -> str | None:
        """The fingerprint recorded when the watcher handled ``source_key``, or None."""
        raw = self.redis.hget(_key("dataset", dataset_id, "seen"), source_key)
        return None if raw is None else _text(raw)

    def mark_seen(self, dataset_id: str, source_key: str, fingerprint: str) -> None:
        """Record that the watcher handled ``source_key`` in this version."""
        self.redis.hset(_key("dataset", dataset_id, "seen"), source_key, fingerprint)

    # -- metrics -------------------------------------------------------------------------------

    def count_death(self, job_id: str) -> int:
        """Count one death of a worker running ``job_id``; return the deaths so far."""
        return int(self.redis.hincrby(_key("deaths"), job_id, 1))

    def deaths(self, job_id: str) -> int:
        """How many workers died running ``job_id``."""
        return int(self.redis.hget(_key("deaths"), job_id) or 0)

    def clear_deaths(self, *job_ids: str) -> None:
        """Forget the deaths of ``job_ids`` (a deliberate retry starts afresh)."""
        if job_ids:
            self.redis.hdel(_key("deaths"), *job_ids)

    def record_duration(self, stage: str, seconds: float) -> None:
        """Add one job duration of ``stage`` to the running totals."""
        with self.redis.pipeline() as pipe:
            pipe.hincrby(_key("metrics", "durations"), f"{stage}:count", 1)
            pipe.hincrbyfloat(_key("metrics", "durations"), f"{stage}:sum", seconds)
            pipe.execute()

    def durations(self) -> dict[str, tuple[int, float]]:
        """Stage → (jobs, total seconds)."""
        raw = {
            _text(k): _text(v) for k, v in self.redis.hgetall(_key("metrics", "durations")).items()
        }
        stages = {k.rsplit(":", 1)[0] for k in raw}
        return {s: (int(raw.get(f"{s}:count", 0)), float(raw.get(f"{s}:sum", 0.0))) for s in stages}

    def record_requeue(self, job_id: str, expired_at: float, requeued_at: float) -> None:
        """Remember that an abandoned job was put back on its queue."""
        entry = json.dumps({"job_id": job_id, "expired_at": expired_at, "requeued_at": requeued_at})
        with self.redis.pipeline() as pipe:
            pipe.lpush(_key("metrics", "requeues"), entry)
            pipe.ltrim(_key("metrics", "requeues"), 0, MAX_REQUEUE_RECORDS - 1)
            pipe.execute()

    def requeues(self) -> list[dict[str, Any]]:
        """Recent re-queues of abandoned jobs, newest first."""
        return [json.loads(v) for v in self.redis.lrange(_key("metrics", "requeues"), 0, -1)]


def _key(*parts: str) -> str:
    return PREFIX + ":".join(parts)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
