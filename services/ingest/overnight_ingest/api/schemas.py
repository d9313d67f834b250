"""Request and response bodies of the ingest API (the contract other tools rely on)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from overnight.jobs.status import DatasetState, JobStatus, StatusCounts


class DatasetCreate(BaseModel):
    """``POST /datasets``: a NAS folder or bucket prefix (or none, to upload images), a pipeline."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(
        None,
        description="file:///abs/path or s3://bucket/prefix; omit to fill the dataset by uploads",
    )
    pipeline: str | None = Field(None, description="pipeline name (default: the service's)")
    metadata: dict[str, Any] = Field(default_factory=dict)


class DatasetCreated(BaseModel):
    """Answer to ``POST /datasets``: 201 for a new dataset, 200 for one registered already."""

    id: str
    created: bool
    n_images: int
    enqueued: int


class Failure(BaseModel):
    """A failed image and why."""

    image_id: str
    reason: str


class DatasetPublic(BaseModel):
    """``GET /datasets/{id}``."""

    id: str
    state: DatasetState
    counts: StatusCounts
    failures: list[Failure]
    source: str
    pipeline: str
    metadata: dict[str, Any]
    created_at: str
    n_images: int


class DatasetListItem(BaseModel):
    """One entry of ``GET /datasets``."""

    id: str
    state: DatasetState
    counts: StatusCounts
    source: str
    pipeline: str
    created_at: str
    n_images: int


class UploadAccepted(BaseModel):
    """Answer to ``POST /datasets/{id}/images``."""

    dataset_id: str
    image_id: str
    key: str
    job_id: str
    size_bytes: int


class RetryAccepted(BaseModel):
    """Answer to ``POST /datasets/{id}/retry``."""

    id: str
    retried: list[str]


class JobPublic(BaseModel):
    """``GET /jobs/{id}``: one stage of one image."""

    id: str
    stage: str
    dataset_id: str
    image_id: str
    status: JobStatus
    reason: str
    queue_status: str
    enqueued_at: str | None
    started_at: str | None
    ended_at: str | None
