"""Finishing a dataset: ``summary.csv`` over every complete result, and ``failures.json``.

:func:`finish_dataset` is the one way every runner ends a dataset: the embedded run when its
images are through, the queue worker that finishes the last image, the dispatcher when the
last Kubernetes Job ends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from overnight.results.layout import FAILURES_FILE, SUMMARY_FILE, DatasetResults
from overnight.results.record import ImageResult
from overnight.results.summary import spreadsheet_safe, summary_table
from overnight.storage import read_manifest

logger = logging.getLogger(__name__)


def complete_results(results: DatasetResults) -> Iterable[ImageResult]:
    """The ``result.json`` of every complete (manifest-checked) image of the dataset."""
    for image_prefix in results.published_images():
        if read_manifest(results.store, image_prefix) is None:
            continue
        yield ImageResult.read(results.store, image_prefix)


def summary_of(results: DatasetResults) -> pd.DataFrame:
    """The dataset's ``summary.csv`` table: one row per complete image, by ``image_id``."""
    return summary_table(result.summary_row() for result in complete_results(results))


def finish_dataset(
    results: DatasetResults, failures: Sequence[Mapping[str, Any]] | None = None
) -> int:
    """Write ``summary.csv`` (and ``failures.json`` when ``failures`` is given); return rows.

    Staging left under ``<image_id>/.attempts/`` by killed publications is deleted first.

    ``failures`` are JSON-ready records, one per failed image (``image_id``, ``source``,
    ``status``, ``reason``, …).
    """
    for key in list(results.leftover_staging()):  # no publication runs any more
        logger.info("deleting %s, left by a publication that never finished", key)
        results.store.delete(key)
    table = summary_of(results)
    safe = spreadsheet_safe(table)  # metadata may hold "=HYPERLINK(...)"
    results.write_file(SUMMARY_FILE, safe.to_csv(index=False).encode("utf-8"))
    if failures is not None:
        body = json.dumps(list(failures), indent=2).encode("utf-8")
        results.write_file(FAILURES_FILE, body)
    return len(table)
