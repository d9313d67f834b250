"""Dataset-level facts: who submitted it, when, with which pipeline, how far it has got.

``dataset.json`` (written by the ingest API) gives id, source, pipeline, metadata,
``created_at`` and ``n_images``; ``failures.json`` lists images that could not be analysed.
Progress comes from the ingest API when one is configured (see the QC service), otherwise
from storage: done = complete results, failed = failures without a later result, queued =
the rest of ``n_images`` when it is known.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from overnight.errors import ObjectNotFoundError
from overnight.review.index import DatasetIndex
from overnight.review.listing import DatasetListing, child_key
from overnight.storage.base import ObjectStore

logger = logging.getLogger(__name__)


class DatasetRecord(BaseModel):
    """``dataset.json`` as the ingest API writes it (unknown keys are kept, not required)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = ""
    source: str = ""
    pipeline: str = ""
    metadata: dict[str, Any] = {}
    created_at: str = ""
    n_images: int | None = None


class Failure(BaseModel):
    """One image that failed, and why."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    image_id: str
    source: str = ""
    status: str = "failed"
    reason: str = ""


@dataclass(frozen=True)
class Progress:
    """Images per state, and the dataset's state.

    ``state`` is ``queued``, ``running``, ``done``, ``failed`` or ``partial`` (finished with
    failures); ``origin`` says where the numbers came from (storage or the ingest API).
    """

    queued: int
    running: int
    done: int
    failed: int
    state: str
    origin: str = "storage"

    @property
    def total(self) -> int:
        """Every image counted."""
        return self.queued + self.running + self.done + self.failed


@dataclass(frozen=True)
class DatasetSummary:
    """A line of the datasets page."""

    dataset_id: str
    owner: str
    date: str
    pipeline: str
    progress: Progress
    verdicts: dict[str, int]


def read_json(store: ObjectStore, key: str) -> Any:
    """A JSON document from the store, or None when absent or unreadable (with a warning)."""
    try:
        return json.loads(store.read_bytes(key))
    except ObjectNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        logger.warning("ignoring unreadable %s: %s", key, err)
        return None


def read_dataset_record(store: ObjectStore, listing: DatasetListing) -> DatasetRecord | None:
    """``dataset.json`` of the dataset, when it has one."""
    if "dataset.json" not in listing.dataset_files:
        return None
    body = read_json(store, child_key(listing.prefix, "dataset.json"))
    try:
        return DatasetRecord.model_validate(body) if isinstance(body, dict) else None
    except ValidationError as err:
        logger.warning("ignoring invalid dataset.json of %s: %s", listing.dataset_id, err)
        return None


def read_failures(
    store: ObjectStore, listing: DatasetListing, index: DatasetIndex
) -> list[Failure]:
    """Failures recorded in ``failures.json`` for images that still have no complete result."""
    if "failures.json" not in listing.dataset_files:
        return []
    body = read_json(store, child_key(listing.prefix, "failures.json"))
    failures = []
    for entry in body if isinstance(body, list) else []:
        try:
            failure = Failure.model_validate(entry)
        except ValidationError:
            continue
        if failure.image_id not in index.by_id:
            failures.append(failure)
    return failures


def storage_progress(
    index: DatasetIndex, failures: list[Failure], n_images: int | None
) -> Progress:
    """Progress as storage shows it (nothing is known about running images)."""
    done, failed = len(index.rows), len(failures)
    queued = max(0, n_images - done - failed) if n_images is not None else 0
    if queued:
        state = "running" if done or failed else "queued"
    elif failed:
        state = "partial" if done else "failed"
    else:
        state = "done"
    return Progress(queued=queued, running=0, done=done, failed=failed, state=state)


def summarise_dataset(
    index: DatasetIndex, record: DatasetRecord | None, progress: Progress
) -> DatasetSummary:
    """Owner, date and pipeline from ``dataset.json``, else from the images' results."""
    meta = record.metadata if record else {}
    owner = str(meta.get("user") or index.memo("owner", lambda: _most_common(index, "user")))
    date = (record.created_at if record else "") or index.memo(
        "date", lambda: _earliest_date(index)
    )
    pipeline = (record.pipeline if record else "") or index.memo(
        "pipeline", lambda: _most_common_pipeline(index)
    )
    return DatasetSummary(index.dataset_id, owner, date, pipeline, progress, index.verdict_counts())


def _most_common(index: DatasetIndex, field: str) -> str:
    counts = Counter(value for row in index.rows if (value := row.metadata.get(field, "")))
    return counts.most_common(1)[0][0] if counts else ""


def _most_common_pipeline(index: DatasetIndex) -> str:
    counts = Counter(row.pipeline for row in index.rows if row.pipeline)
    return counts.most_common(1)[0][0] if counts else ""


def _earliest_date(index: DatasetIndex) -> str:
    dates = [row.metadata.get("date", "") for row in index.rows]
    dates = [d for d in dates if d] or [
        row.finished_at[:10] for row in index.rows if row.finished_at
    ]
    return min(dates) if dates else ""
