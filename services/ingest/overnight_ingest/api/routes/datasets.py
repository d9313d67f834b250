"""``/datasets``: register a dataset, upload images, follow its progress, retry failures."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response, status

from overnight.errors import NoImagesError
from overnight.imaging.files import is_image_name
from overnight.jobs.ids import job_id_for
from overnight.jobs.retrain_models import chosen_versions
from overnight.jobs.sources import image_id_of, list_source, open_source
from overnight.jobs.state import DatasetRecord, JobBook
from overnight.jobs.status import JobStatus, dataset_state
from overnight.jobs.submit import MODELS_KEY, UPLOAD_SOURCE, upload_prefix
from overnight.storage import LocalStore, validate_id, validate_key
from overnight_ingest.api.deps import (
    BookDep,
    ReadAccess,
    SettingsDep,
    StoreDep,
    SubmitterDep,
    WriteAccess,
)
from overnight_ingest.api.schemas import (
    DatasetCreate,
    DatasetCreated,
    DatasetListItem,
    DatasetPublic,
    Failure,
    RetryAccepted,
    UploadAccepted,
)
from overnight_ingest.core.uploads import BadUpload, receive_file

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/datasets", tags=["datasets"])


def _record_or_404(book: JobBook, dataset_id: str) -> DatasetRecord:
    record = book.dataset(validate_id(dataset_id))
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no dataset {dataset_id!r}")
    return record


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[WriteAccess])
def create_dataset(
    body: DatasetCreate, submitter: SubmitterDep, settings: SettingsDep, response: Response
) -> DatasetCreated:
    """Register a dataset and enqueue one job per image (201; 200 if it was registered already)."""
    metadata = dict(body.metadata)
    if body.models:
        metadata[MODELS_KEY] = chosen_versions(body.models)
    record, created = submitter.register(body.source, body.pipeline or settings.pipeline, metadata)
    enqueued: list[str] = []
    if record.source != UPLOAD_SOURCE:
        source = open_source(record.source, settings)
        if isinstance(source, LocalStore) and not source.root.is_dir():
            raise NoImagesError(f"source {record.source} is not a folder")
        listing = list_source(source)
        enqueued = submitter.enqueue_images(record, listing.images)
        submitter.record_ignored(record, listing.ignored)
    if not created:
        response.status_code = status.HTTP_200_OK
    n_images = len(submitter.book.images(record.id))
    logger.info("dataset %s: %d images, %d enqueued now", record.id, n_images, len(enqueued))
    return DatasetCreated(id=record.id, created=created, n_images=n_images, enqueued=len(enqueued))


@router.get("", dependencies=[ReadAccess])
def list_datasets(book: BookDep) -> list[DatasetListItem]:
    """Every dataset with its state and counts, oldest first."""
    items = []
    for dataset_id in book.dataset_ids():
        record = book.dataset(dataset_id)
        if record is None:
            continue
        counts = book.counts(dataset_id)
        items.append(
            DatasetListItem(
                id=record.id,
                state=dataset_state(counts),
                counts=counts,
                source=record.source,
                pipeline=record.pipeline,
                created_at=record.created_at,
                n_images=counts.total,
            )
        )
    return items


@router.get("/{dataset_id}", dependencies=[ReadAccess])
def get_dataset(dataset_id: str, book: BookDep) -> DatasetPublic:
    """A dataset's state, counts, and each failed image with its reason."""
    record = _record_or_404(book, dataset_id)
    images = book.images(record.id)
    counts = book.counts(record.id)
    failures = [
        Failure(image_id=s.image_id, reason=s.reason)
        for s in images
        if s.status == JobStatus.FAILED
    ]
    return DatasetPublic(
        id=record.id,
        state=dataset_state(counts),
        counts=counts,
        failures=failures,
        source=record.source,
        pipeline=record.pipeline,
        metadata=record.metadata,
        created_at=record.created_at,
        n_images=len(images),
    )


@router.post(
    "/{dataset_id}/images", status_code=status.HTTP_201_CREATED, dependencies=[WriteAccess]
)
async def upload_image(
    dataset_id: str,
    request: Request,
    book: BookDep,
    store: StoreDep,
    submitter: SubmitterDep,
    settings: SettingsDep,
) -> UploadAccepted:
    """Upload one image (multipart field ``file``) into a dataset created without a source.

    The body is streamed to a spooled temporary file, checked against the size cap while it
    arrives (413 past it), then streamed to storage under ``uploads/<dataset_id>/<file name>``.
    """
    record = _record_or_404(book, dataset_id)
    if record.source != UPLOAD_SOURCE:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="this dataset reads its images from its source"
        )
    declared = int(request.headers.get("content-length") or 0)
    if declared > settings.upload_max_bytes + 64 * 1024:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, detail=_too_large(settings.upload_max_bytes)
        )
    received = await receive_file(
        request.headers.get("content-type"), request.stream(), settings.upload_max_bytes
    )
    with received.content:
        key = _upload_key(record.id, received.filename)
        image_id = image_id_of(key, upload_prefix(record.id))
        if book.image(record.id, image_id) is not None:
            raise HTTPException(
                status.HTTP_409_CONFLICT, detail=f"image {image_id!r} was uploaded already"
            )
        store.write_stream(key, received.content)
    submitter.enqueue_images(record, [store.stat(key)])
    return UploadAccepted(
        dataset_id=record.id,
        image_id=image_id,
        key=key,
        job_id=job_id_for("segmentation", record.id, image_id),
        size_bytes=received.size,
    )


@router.post("/{dataset_id}/retry", dependencies=[WriteAccess])
def retry_dataset(dataset_id: str, book: BookDep, submitter: SubmitterDep) -> RetryAccepted:
    """Re-enqueue every failed image of the dataset."""
    record = _record_or_404(book, dataset_id)
    return RetryAccepted(id=record.id, retried=submitter.retry_failed(record))


def _upload_key(dataset_id: str, filename: str) -> str:
    """``uploads/<dataset_id>/<filename>``; refuses any name but a plain image file name."""
    if (
        not filename
        or "/" in filename
        or "\\" in filename
        or filename.startswith(".")
        or not is_image_name(filename)
    ):
        raise BadUpload(
            f"file name {filename!r} must be a plain .tif/.tiff/.ome.tif name, without folders"
        )
    return validate_key(f"{upload_prefix(dataset_id)}{filename}")


def _too_large(limit: int) -> str:
    return f"upload larger than the limit of {limit} bytes (OVERNIGHT_UPLOAD_MAX_BYTES)"
