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
    models: dict[str, str] = Field(
        default_factory=dict,
        max_length=8,
        description='model versions to analyse with, e.g. {"cells": "latest"} (GET /models); '
        "default: the pipeline's own",
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


class ReanalyseCreate(BaseModel):
    """``POST /datasets/{id}/reanalyse``: model name → version to analyse the images with.

    A version is ``latest``, ``default`` (the shipped model) or one listed by ``GET /models``.
    """

    model_config = ConfigDict(extra="forbid")

    models: dict[str, str] = Field(min_length=1, max_length=8)


class ReanalyseAccepted(BaseModel):
    """Answer to ``POST /datasets/{id}/reanalyse``: the new results generation (a dataset)."""

    id: str
    reanalysis_of: str
    models: dict[str, str]
    created: bool
    enqueued: int
    n_images: int


class ModelVersionPublic(BaseModel):
    """One version of a model in the registry (or the shipped default)."""

    version: str
    reference: str
    created: str
    parent: str
    default: bool


class ModelPublic(BaseModel):
    """``GET /models``: one model name with its versions, oldest first."""

    name: str
    default_version: str | None
    versions: list[ModelVersionPublic]


class TrainCreate(BaseModel):
    """``POST /models/{name}/train``: fine-tune on the corrections of these datasets."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[str] = Field(min_length=1, max_length=100)
    init: str = Field("latest", max_length=80, description="version to start from")
    synthetic_share: float = Field(0.0, ge=0.0, le=0.9)
    val_share: float = Field(0.2, ge=0.05, le=0.5)
    epochs: int | None = Field(None, ge=1, le=200)
    steps: int | None = Field(None, ge=1, le=1000)


class TrainAccepted(BaseModel):
    """Answer to ``POST /models/{name}/train``: the queued job and where to follow it."""

    job_id: str
    status_url: str


class TrainStatus(BaseModel):
    """``GET /models/train/{job_id}``: the queue's status and the run's progress."""

    job_id: str
    queue_status: str
    progress: dict[str, Any]
    error: str
