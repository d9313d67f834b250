"""Take image jobs off the segmentation queue into the dispatcher's in-flight registry (Redis).

With the Kubernetes backend (the Helm chart's ``settings.backend: kubernetes``) images are
enqueued as usual (RQ job ids derived from dataset and image) and no RQ worker reads
``overnight-segmentation``: the dispatcher does.

Keys (under ``overnight:dispatch:``):

- ``inflight`` — hash RQ job id → :class:`Claim` JSON: the image is off the queue and its
  Kubernetes Job is (being) created and has not ended. Moving an id from the queue list into
  this hash is one Lua script, so a crash loses nothing: an id is always in one of the two.
  The claim's ``token`` is written on the Job as an annotation, which tells this claim's Job
  apart from an older Job of the same name (a retried image whose failed Job still exists).
- ``drains`` — hash Job name → :class:`DrainClaim` JSON: drain Jobs (``imagesPerPod`` > 1)
  not yet ended; their pods take images off the queues themselves.
- ``batches`` — counter naming drain Jobs.

The RQ job itself is kept in step (``started`` while its Job runs, then ``finished`` or
``failed``), so ``GET /jobs/{id}`` and the once-only enqueue check see what happened.
"""

from __future__ import annotations

import logging
import time
import uuid

from pydantic import BaseModel, ConfigDict, Field
from redis import Redis
from rq.job import JobStatus as RQStatus

from overnight.errors import ConfigError
from overnight.jobs.payload import ImageJob
from overnight.jobs.queues import fetch_job, stage_queue

logger = logging.getLogger(__name__)

PREFIX = "overnight:dispatch:"
INFLIGHT_KEY = PREFIX + "inflight"
DRAINS_KEY = PREFIX + "drains"
BATCHES_KEY = PREFIX + "batches"
#: The stage whose queue the dispatcher takes images from (its Job runs both stages).
STAGE = "segmentation"

# Pop the oldest job id off the queue and record it in flight, atomically.
_CLAIM = """
local id = redis.call('LPOP', KEYS[1])
if not id then return false end
redis.call('HSET', KEYS[2], id, ARGV[1])
return id
"""

# Rewrite a claim only while it is in flight (its end may have been recorded meanwhile).
_UPDATE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


class Claim(BaseModel):
    """One image taken off the queue; ``image`` is None until its payload was read."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    token: str
    claimed_at: float = Field(default_factory=time.time)
    image: ImageJob | None = None
    created: bool = False


class DrainClaim(BaseModel):
    """One drain Job (``imagesPerPod`` > 1) that has not ended."""

    model_config = ConfigDict(frozen=True)

    name: str
    token: str
    dataset_id: str
    pipeline: str
    batch_id: str
    claimed_at: float = Field(default_factory=time.time)


def new_token() -> str:
    """A fresh claim token (written on the Job as ``overnight.io/dispatch-token``)."""
    return uuid.uuid4().hex[:16]


class Intake:
    """The queue side of the dispatcher: claims, drains and the RQ jobs' statuses."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.queue = stage_queue(redis, STAGE)
        self._claim = redis.register_script(_CLAIM)
        self._update = redis.register_script(_UPDATE)

    # -- one Job per image ---------------------------------------------------------------------

    def claim(self) -> Claim | None:
        """Take the oldest image off the queue (None when it is empty), payload read."""
        stub = Claim(job_id="", token=new_token())
        raw = self._claim(keys=[self.queue.key, INFLIGHT_KEY], args=[stub.model_dump_json()])
        if raw is None:
            return None
        job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        return self.with_payload(stub.model_copy(update={"job_id": job_id}))

    def with_payload(self, claim: Claim) -> Claim | None:
        """``claim`` with its image read from the RQ job (saved); None if the job is gone."""
        if claim.image is not None:
            return claim
        job = fetch_job(self.redis, claim.job_id)
        if job is None or not job.args:
            logger.warning("queued job %s has no payload any more; dropped", claim.job_id)
            self.release(claim.job_id)
            return None
        try:
            image = ImageJob.from_json(job.args[0])
        except ConfigError as err:
            logger.error("job %s: %s; marked failed", claim.job_id, err)
            self.set_rq_status(claim.job_id, RQStatus.FAILED)
            self.release(claim.job_id)
            return None
        filled = claim.model_copy(update={"image": image})
        self.save(filled)
        return filled

    def save(self, claim: Claim) -> bool:
        """Write ``claim`` back (e.g. marked ``created``) if still in flight; whether it was."""
        done = self._update(keys=[INFLIGHT_KEY], args=[claim.job_id, claim.model_dump_json()])
        return int(done) == 1

    def claims(self) -> dict[str, Claim]:
        """Every claim in flight, by RQ job id."""
        raw = self.redis.hgetall(INFLIGHT_KEY)
        claims = {}
        for key, value in raw.items():
            job_id = key.decode() if isinstance(key, bytes) else str(key)
            claims[job_id] = Claim.model_validate_json(value).model_copy(update={"job_id": job_id})
        return claims

    def claim_of(self, job_id: str) -> Claim | None:
        """The claim of ``job_id``, or None when it is not in flight."""
        raw = self.redis.hget(INFLIGHT_KEY, job_id)
        if raw is None:
            return None
        return Claim.model_validate_json(raw).model_copy(update={"job_id": job_id})

    def in_flight(self) -> int:
        """Images whose Job is created (or about to be) and has not ended."""
        return int(self.redis.hlen(INFLIGHT_KEY))

    def release(self, job_id: str) -> bool:
        """Forget the claim of ``job_id`` (its end is recorded); False if it was gone."""
        return bool(self.redis.hdel(INFLIGHT_KEY, job_id))

    def set_rq_status(self, job_id: str, status: RQStatus) -> None:
        """Keep the RQ job's status in step with its Kubernetes Job (see the module doc)."""
        job = fetch_job(self.redis, job_id)
        if job is None:
            return
        job.set_status(status)
        if status in (RQStatus.FINISHED, RQStatus.FAILED):
            ttl = job.result_ttl if status == RQStatus.FINISHED else job.failure_ttl
            if ttl is not None and ttl > 0:
                job.connection.expire(job.key, ttl)

    # -- drain Jobs ----------------------------------------------------------------------------

    def queued(self) -> int:
        """Image jobs waiting in the segmentation queue."""
        return int(self.queue.count)

    def first_queued(self) -> ImageJob | None:
        """The payload of the oldest queued image (names a drain Job), or None."""
        for job_id in self.queue.get_job_ids(0, 1):
            job = fetch_job(self.redis, job_id)
            if job is not None and job.args:
                return ImageJob.from_json(job.args[0])
        return None

    def new_drain(self, first: ImageJob) -> DrainClaim:
        """A new drain claim named after the oldest queued image (the caller sets ``name``)."""
        batch = int(self.redis.incr(BATCHES_KEY))
        return DrainClaim(
            name="",
            token=new_token(),
            dataset_id=first.dataset_id,
            pipeline=first.pipeline,
            batch_id=f"b{batch}",
        )

    def save_drain(self, drain: DrainClaim) -> None:
        """Write a drain claim (before its Job is created)."""
        self.redis.hset(DRAINS_KEY, drain.name, drain.model_dump_json())

    def drains(self) -> dict[str, DrainClaim]:
        """Drain Jobs not yet ended, by Job name."""
        raw = self.redis.hgetall(DRAINS_KEY)
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): DrainClaim.model_validate_json(v)
            for k, v in raw.items()
        }

    def release_drain(self, name: str) -> bool:
        """Forget the drain Job ``name`` (it ended)."""
        return bool(self.redis.hdel(DRAINS_KEY, name))
