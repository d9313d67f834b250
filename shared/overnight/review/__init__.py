"""Reviewing results: verdicts, the per-dataset image index, tables, statistics and plots.

The QC web service (``services/qc-web``) is a thin layer over this package; everything here
reads and writes through :mod:`overnight.storage` and works on a folder or a bucket alike.

>>> from overnight.review import Catalog, Layout      # doctest: +SKIP
>>> catalog = Catalog(open_store("out"), Layout(single_id="out"))  # doctest: +SKIP
>>> catalog.index("out").verdict_counts()              # doctest: +SKIP
{'accepted': 0, 'rejected': 0, 'flagged': 0, 'unreviewed': 12}
"""

from overnight.review.catalog import Catalog, Layout
from overnight.review.index import DatasetIndex, ImageRow, build_index
from overnight.review.table import ImagePage, ImageQuery, query_images
from overnight.review.verdicts import (
    Verdict,
    VerdictFile,
    VerdictRecord,
    read_verdict,
    record_verdict,
)

__all__ = [
    "Catalog",
    "DatasetIndex",
    "ImagePage",
    "ImageQuery",
    "ImageRow",
    "Layout",
    "Verdict",
    "VerdictFile",
    "VerdictRecord",
    "build_index",
    "query_images",
    "read_verdict",
    "record_verdict",
]
