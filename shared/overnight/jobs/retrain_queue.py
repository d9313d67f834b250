"""A retraining run on the queue: fine-tune from reviews, publish to the registry, report progress.

``POST /models/{name}/train`` enqueues :func:`train_model` with a :class:`TrainRequest` on the
segmentation queue (its workers hold TensorFlow and the cell model already; a training run
takes minutes, like a large image). The job reads the corrections of the named datasets from
the service's store (:mod:`overnight.jobs.retrain`), fine-tunes the requested version
(:mod:`overnight.models.retrain`), publishes the new model to the registry at
``OVERNIGHT_MODELS_URL`` (:mod:`overnight.models.registry`) and keeps its progress in the RQ
job's ``meta["progress"]``: ``stage`` (``queued → reading → training → publishing → done``),
``epoch``/``epochs`` and the last losses while training, the new ``version`` when done.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from redis import Redis
from rq import Queue, get_current_job
from rq.job import Job
from rq.serializers import JSONSerializer

from overnight.errors import ConfigError
from overnight.jobs.queues import SEGMENTATION_QUEUE
from overnight.jobs.retrain import open_reviewed, read_corrections
from overnight.jobs.tasks import current_context
from overnight.models.config import load_config
from overnight.models.loading import registry_model_dir, registry_store
from overnight.models.registry import check_version, publish_model
from overnight.models.retrain import FineTuneOptions, fine_tune
from overnight.models.training import epoch_progress
from overnight.storage import validate_id

logger = logging.getLogger(__name__)

TRAIN_PAYLOAD_VERSION = 1
#: Prefix of training job ids (``train-<32 hex>``), told apart from image stages' ids.
TRAIN_JOB_PREFIX = "train-"
#: Longest a training run may take on the queue (s).
TRAIN_TIMEOUT_S = 3 * 3600


class TrainRequest(BaseModel):
    """A retraining run: which model, from which version, on which datasets' corrections."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    kind: Literal["cells", "pnp"]
    datasets: list[str] = Field(min_length=1, max_length=100)
    init: str = Field("latest", description="version to start from: a version, latest, default")
    synthetic_share: float = Field(0.0, ge=0.0, le=0.9)
    val_share: float = Field(0.2, ge=0.05, le=0.5)
    epochs: int | None = Field(None, ge=1, le=200)
    steps: int | None = Field(None, ge=1, le=1000)

    @field_validator("datasets")
    @classmethod
    def _safe_ids(cls, value: list[str]) -> list[str]:
        return [validate_id(v) for v in value]

    @field_validator("init")
    @classmethod
    def _safe_version(cls, value: str) -> str:
        return check_version(value)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainRequest:
        """Parse a job argument; :class:`ConfigError` for an unknown version or a bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ConfigError(f"training request not understood: {err}") from err


def enqueue_training(redis: Redis, request: TrainRequest) -> Job:
    """Put a training run on the queue; the RQ job (its id is ``train-<hex>``)."""
    if registry_store() is None:
        raise ConfigError(
            "no model registry: set OVERNIGHT_MODELS_URL (file:///… or s3://…) on the API and "
            "the workers, so the trained model has somewhere to go and workers can load it"
        )
    queue = Queue(SEGMENTATION_QUEUE, connection=redis, serializer=JSONSerializer)
    return queue.enqueue_call(
        "overnight.jobs.retrain_queue.train_model",
        args=(request.model_dump(mode="json"),),
        job_id=f"{TRAIN_JOB_PREFIX}{uuid.uuid4().hex}",
        timeout=TRAIN_TIMEOUT_S,
        result_ttl=7 * 24 * 3600,
        failure_ttl=7 * 24 * 3600,
        meta={"progress": {"stage": "queued"}},
    )


def training_progress(job: Job) -> dict[str, Any]:
    """What a training job reports: its ``meta["progress"]`` (stage, epochs, version)."""
    job.refresh()
    progress = dict(job.meta.get("progress") or {})
    progress.setdefault("stage", "queued")
    return progress


def _report(**progress: Any) -> None:
    job = get_current_job()
    if job is None:
        return
    job.meta["progress"] = progress
    job.save_meta()


def train_model(payload: dict[str, Any]) -> dict[str, Any]:
    """The training job: read corrections, fine-tune, publish; the new model's reference."""
    request = TrainRequest.from_json(payload)
    settings = current_context().settings  # the worker's settings (its results store)
    registry = registry_store()
    if registry is None:
        raise ConfigError("no model registry on this worker: set OVERNIGHT_MODELS_URL")
    _report(stage="reading", datasets=request.datasets)
    init_dir = registry_model_dir(request.kind, request.init)
    pnp_channel = load_config(init_dir).channel_index if request.kind == "pnp" else 1
    fields = [
        field
        for dataset_id in request.datasets
        for field in read_corrections(
            open_reviewed(dataset_id, settings.storage_url, settings), pnp_channel
        )
    ]
    if not fields:
        raise ConfigError(f"{', '.join(request.datasets)}: no corrected images to learn from")

    def on_epoch(done: int, total: int, logs: dict[str, float]) -> None:
        _report(stage="training", epoch=done, epochs=total, images=len(fields), **logs)

    options = FineTuneOptions(
        epochs=request.epochs,
        steps=request.steps,
        val_fraction=request.val_share,
        synthetic_share=request.synthetic_share,
        verbose=0,
    )
    with tempfile.TemporaryDirectory(prefix="overnight-train-") as scratch:
        out_dir = Path(scratch) / request.kind
        with epoch_progress(on_epoch):
            card = fine_tune(
                request.kind, fields, init_dir, out_dir, options, f"{request.kind}@{request.init}"
            )
        _report(stage="publishing")
        entry = publish_model(registry, out_dir, request.kind)
    outcome = {
        "stage": "done",
        "name": entry.name,
        "version": entry.version,
        "reference": entry.reference,
        "images": len(fields),
        "metrics": card.metrics,
    }
    _report(**outcome)
    logger.info("trained %s from %d corrected images", entry.reference, len(fields))
    return outcome
