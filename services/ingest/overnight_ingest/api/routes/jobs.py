"""``/jobs/{id}``: one stage of one image, as the queue and the job state see it."""

from __future__ import annotations

import re
from datetime import datetime

from fastapi import APIRouter, HTTPException, status

from overnight.jobs.ids import STAGE_PREFIX
from overnight.jobs.payload import ImageJob
from overnight.jobs.queues import fetch_job
from overnight.jobs.status import JobStatus
from overnight_ingest.api.deps import BookDep, ReadAccess, RedisDep
from overnight_ingest.api.schemas import JobPublic

router = APIRouter(prefix="/jobs", tags=["jobs"])

_JOB_ID = re.compile(r"^(seg|pnp)-[0-9a-f]{24}$")
_STAGE_OF_PREFIX = {prefix: stage for stage, prefix in STAGE_PREFIX.items()}


@router.get("/{job_id}", dependencies=[ReadAccess])
def get_job(job_id: str, redis: RedisDep, book: BookDep) -> JobPublic:
    """A job's image, its lifecycle status (with the failure reason) and its queue timestamps."""
    job = fetch_job(redis, job_id) if _JOB_ID.match(job_id) else None
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {job_id!r}")
    payload = ImageJob.from_json(job.args[0])
    state = book.image(payload.dataset_id, payload.image_id)
    return JobPublic(
        id=job_id,
        stage=_STAGE_OF_PREFIX[job_id.split("-", 1)[0]],
        dataset_id=payload.dataset_id,
        image_id=payload.image_id,
        status=state.status if state else JobStatus.QUEUED,
        reason=state.reason if state else "",
        queue_status=_status_text(job.get_status()),
        enqueued_at=_iso(job.enqueued_at),
        started_at=_iso(job.started_at),
        ended_at=_iso(job.ended_at),
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _status_text(value: object) -> str:
    return str(getattr(value, "value", value))
