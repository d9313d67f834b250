"""Re-analysing a dataset with other model versions, into a new results generation.

Layout: a re-analysis is a **new dataset** ``<original id>-re-<8 hex>`` (the hex names the
model versions), registered with the original's source and pipeline, and with
``metadata["reanalysis_of"]`` (the original id) and ``metadata["models"]`` (name → concrete
version). Its results lie under ``results/<new id>/`` like any dataset's, so the original's
results stay as they were, both stay readable by every reader (``overnight.results.load``, the
QC web, ``summary.csv``), and the QC web can show the two side by side. A results revision
inside the original's prefix was the alternative; it would have needed every reader to learn
which revision to read, and the queue's once-only bookkeeping (one state entry per dataset and
image) to be keyed by revision too.

Re-analysing with the same versions again names the same dataset and enqueues nothing new
(every image is done), as registering a folder twice does.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping

from overnight.errors import ConfigError
from overnight.jobs.retrain_models import check_models
from overnight.jobs.sources import list_source, open_source
from overnight.jobs.state import DatasetRecord
from overnight.jobs.submit import (
    MODELS_KEY,
    REANALYSIS_OF_KEY,
    UPLOAD_SOURCE,
    Submitter,
    upload_prefix,
)
from overnight.storage import validate_id

logger = logging.getLogger(__name__)


def reanalysis_id(dataset_id: str, models: Mapping[str, str]) -> str:
    """``<dataset_id>-re-<8 hex of the models>``: the id of a re-analysis.

    >>> reanalysis_id("plate-7", {"cells": "v2"}) == reanalysis_id("plate-7", {"cells": "v2"})
    True
    """
    digest = hashlib.sha256(json.dumps(dict(models), sort_keys=True).encode()).hexdigest()[:8]
    return validate_id(f"{dataset_id}-re-{digest}")


def reanalyse(
    submitter: Submitter, original: DatasetRecord, models: Mapping[str, str]
) -> tuple[DatasetRecord, bool, list[str]]:
    """Register the re-analysis of ``original`` with ``models`` and enqueue its images.

    ``models`` maps model names to concrete versions (resolve ``latest`` first). Returns the
    new dataset's record, whether it was created now, and the image keys enqueued now.
    """
    models = check_models(models)
    if not models:
        raise ConfigError('name at least one model version, e.g. {"models": {"cells": "…"}}')
    root = str(original.metadata.get(REANALYSIS_OF_KEY) or original.id)
    record = DatasetRecord(
        id=reanalysis_id(root, models),
        source=original.source,
        pipeline=original.pipeline,
        metadata={**original.metadata, REANALYSIS_OF_KEY: root, MODELS_KEY: models},
    )
    created = submitter.book.create_dataset(record)
    if created:
        submitter.write_record(record)
        logger.info("dataset %s re-analyses %s with %s", record.id, root, models)
    else:
        record = submitter.book.dataset(record.id) or record
    if original.source == UPLOAD_SOURCE:
        images = list(submitter.store.list(upload_prefix(root)))
    else:
        listing = list_source(open_source(original.source, submitter.settings))
        images = listing.images
    return record, created, submitter.enqueue_images(record, images)
