"""Deterministic ids: the same dataset or image always gets the same id, so duplicates show.

>>> dataset_id_for("file:///nas/lab/plate 7/", "cytometry")[:8]
'plate-7-'
>>> job_id_for("segmentation", "ds1", "img1") == job_id_for("segmentation", "ds1", "img1")
True
"""

from __future__ import annotations

import hashlib
import re
import uuid

from overnight.storage import validate_id

_NOT_ID = re.compile(r"[^A-Za-z0-9_-]+")
#: Short stage names used in job ids (``seg-…``, ``pnp-…``).
STAGE_PREFIX = {"segmentation": "seg", "counting": "pnp"}


def _digest(*parts: str, length: int = 16) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:length]


def dataset_id_for(source: str, pipeline: str) -> str:
    """The id of the dataset at ``source`` analysed with ``pipeline``: ``<last folder>-<hash>``.

    The REST API and the watcher derive the same id, so submitting a folder twice (or the
    watcher finding it after a submission) names one dataset.
    """
    stem = source.rstrip("/").rsplit("/", 1)[-1]
    slug = _NOT_ID.sub("-", stem).strip("-_")[:40] or "dataset"
    return validate_id(f"{slug}-{_digest(source.rstrip('/'), pipeline, length=10)}")


def upload_dataset_id(name: str) -> str:
    """A fresh id for a dataset filled by uploads (``name`` is a hint, e.g. the client's)."""
    slug = _NOT_ID.sub("-", name).strip("-_")[:40] or "upload"
    return validate_id(f"{slug}-{uuid.uuid4().hex[:10]}")


def job_id_for(stage: str, dataset_id: str, image_id: str) -> str:
    """RQ job id of one image's ``stage`` (``segmentation`` or ``counting``)."""
    return f"{STAGE_PREFIX[stage]}-{_digest(dataset_id, image_id, length=24)}"
