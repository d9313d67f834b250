"""Models: list the registry, queue a retraining run, re-analyse a dataset with other versions."""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Response, status
from rq.job import Job

from overnight.jobs.queues import fetch_job
from overnight.jobs.retrain_models import chosen_versions
from overnight.jobs.retrain_queue import (
    TRAIN_JOB_PREFIX,
    TrainRequest,
    enqueue_training,
    training_progress,
)
from overnight.jobs.retrain_reanalyse import reanalyse
from overnight.jobs.submit import REANALYSIS_OF_KEY
from overnight.models.loading import registry_store, shipped_version
from overnight.models.registry import list_versions
from overnight.storage import validate_id
from overnight_ingest.api.deps import BookDep, ReadAccess, RedisDep, SubmitterDep, WriteAccess
from overnight_ingest.api.schemas import (
    ModelPublic,
    ModelVersionPublic,
    ReanalyseAccepted,
    ReanalyseCreate,
    TrainAccepted,
    TrainCreate,
    TrainStatus,
)

router = APIRouter(tags=["models"])

#: The models the cytometry pipelines load, by name.
MODEL_NAMES = ("cells", "pnp")
_TRAIN_JOB_ID = re.compile(rf"^{TRAIN_JOB_PREFIX}[0-9a-f]{{32}}$")


@router.post("/datasets/{dataset_id}/reanalyse", dependencies=[WriteAccess])
def reanalyse_dataset(
    dataset_id: str,
    body: ReanalyseCreate,
    book: BookDep,
    submitter: SubmitterDep,
    response: Response,
) -> ReanalyseAccepted:
    """Analyse the dataset's images again with the named model versions, as a new dataset.

    202 when the re-analysis is new, 200 when it exists already (same versions). The
    previous results stay where they are; the new dataset names the original in
    ``metadata.reanalysis_of`` and the versions in ``metadata.models``.
    """
    original = book.dataset(validate_id(dataset_id))
    if original is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no dataset {dataset_id!r}")
    models = chosen_versions(body.models)
    record, created, enqueued = reanalyse(submitter, original, models)
    response.status_code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
    return ReanalyseAccepted(
        id=record.id,
        reanalysis_of=str(record.metadata[REANALYSIS_OF_KEY]),
        models=models,
        created=created,
        enqueued=len(enqueued),
        n_images=len(book.images(record.id)),
    )


@router.get("/models", dependencies=[ReadAccess])
def list_models() -> list[ModelPublic]:
    """The cytometry models: shipped default and the registry's versions of each."""
    store = registry_store()
    found = []
    for name in MODEL_NAMES:
        default = shipped_version(name)
        versions = [
            ModelVersionPublic(
                version=entry.version,
                reference=entry.reference,
                created=entry.created,
                parent=entry.parent,
                default=entry.version == default,
            )
            for entry in (list_versions(store, name) if store is not None else [])
        ]
        found.append(ModelPublic(name=name, default_version=default, versions=versions))
    return found


@router.post(
    "/models/{name}/train", status_code=status.HTTP_202_ACCEPTED, dependencies=[WriteAccess]
)
def train_model(name: str, body: TrainCreate, redis: RedisDep, book: BookDep) -> TrainAccepted:
    """Queue a fine-tune of model ``name`` on the datasets' corrections; follow it at the URL."""
    if name not in MODEL_NAMES:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no model {name!r}; models: {list(MODEL_NAMES)}"
        )
    for dataset_id in body.datasets:
        if book.dataset(validate_id(dataset_id)) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no dataset {dataset_id!r}")
    request = TrainRequest(kind=name, **body.model_dump())  # type: ignore[arg-type]
    job = enqueue_training(redis, request)
    return TrainAccepted(job_id=job.id, status_url=f"/models/train/{job.id}")


@router.get("/models/train/{job_id}", dependencies=[ReadAccess])
def training_status(job_id: str, redis: RedisDep) -> TrainStatus:
    """A training run's queue status and progress (stage, epoch of epochs, new version)."""
    job = fetch_job(redis, job_id) if _TRAIN_JOB_ID.match(job_id) else None
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no training job {job_id!r}")
    queue_status = str(getattr(job.get_status(), "value", job.get_status()))
    return TrainStatus(
        job_id=job_id,
        queue_status=queue_status,
        progress=training_progress(job),
        error=_last_error(job),
    )


def _last_error(job: Job) -> str:
    """The last line of a failed job's traceback (its exception and message), else ''."""
    result = job.latest_result()
    lines = (result.exc_string or "").strip().splitlines() if result is not None else []
    return lines[-1] if lines and job.is_failed else ""
