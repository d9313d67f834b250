"""Request and response bodies of the ingest API (the contract other tools rely on)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from overnight.jobs.status import DatasetState, JobStatus, StatusCounts

#: Largest ``metadata`` of a dataset (bytes of JSON): it is stored in Redis and dataset.json.
MAX_METADATA_BYTES = 64 * 1024


class DatasetCreate(BaseModel):
    """``POST /datasets``: a NAS folder or bucket prefix (or none, to upload images), a pipeline."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(
        None,
        max_length=4096,
        description="file:///abs/path or s3://bucket/prefix; omit to fill the dataset by uploads",
    )
    pipeline: str | None = Field(
        None, max_length=200, description="pipeline name (default: the service's)"
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description=f"at most {MAX_METADATA_BYTES} bytes as JSON"
    )

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, default=str).encode("utf-8"))
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is {size} bytes as JSON; at most {MAX_METADATA_BYTES}")
        return value


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
