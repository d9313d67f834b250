"""Filter, sort and page the image table of a dataset (all in memory, from the index).

Filters match metadata fields exactly (case-insensitive) or by shell-style wildcards
(``f.time=10:*``); ``text`` searches the image id and every metadata value.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from overnight.review.index import DatasetIndex, ImageRow

#: Rows per page unless asked otherwise, and the bounds of what may be asked.
DEFAULT_PAGE_SIZE = 50
MIN_PAGE_SIZE = 10
MAX_PAGE_SIZE = 500
#: Verdict filter values (``all`` keeps every image).
VERDICT_FILTERS = ("all", "unreviewed", "accepted", "rejected", "flagged", "reviewed")
#: Columns sorted as numbers, besides ``n_*`` and ``pnp_*`` summary keys.
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class ImageQuery:
    """Which rows of the table to show, in what order, and which page.

    ``filters`` maps a metadata field to a value or wildcard pattern; ``sort`` is a column
    name (``image_id``, a metadata field, a summary key such as ``n_cells``,
    ``pnps_<type>``, ``verdict`` or ``doubt`` — the number of QC flags), ``descending`` its
    direction.
    """

    filters: Mapping[str, str] = field(default_factory=dict)
    text: str = ""
    verdict: str = "all"
    sort: str = "image_id"
    descending: bool = False
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE


@dataclass(frozen=True)
class ImagePage:
    """One page of matching rows, with the totals a pager needs."""

    rows: tuple[ImageRow, ...]
    total: int
    page: int
    n_pages: int
    page_size: int


def _matches_value(pattern: str, value: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(value.casefold(), pattern.casefold())
    return value.casefold() == pattern.casefold()


def _matches_verdict(wanted: str, row: ImageRow) -> bool:
    if wanted == "all":
        return True
    if wanted == "reviewed":
        return row.verdict is not None
    return row.verdict_name == wanted


def row_matches(query: ImageQuery, row: ImageRow) -> bool:
    """Whether ``row`` passes every filter of ``query``."""
    if not _matches_verdict(query.verdict, row):
        return False
    for name, pattern in query.filters.items():
        if pattern and not _matches_value(pattern, row.metadata.get(name, "")):
            return False
    if query.text:
        needle = query.text.casefold()
        haystack = (row.image_id, *row.metadata.values())
        if not any(needle in value.casefold() for value in haystack):
            return False
    return True


def natural_key(text: str) -> tuple[object, ...]:
    """Sort key that orders ``img_2`` before ``img_10``."""
    return tuple(int(part) if part.isdigit() else part.casefold() for part in _DIGITS.split(text))


def sort_key(column: str) -> Callable[[ImageRow], tuple[object, ...]]:
    """A key function for ``column``; missing and NaN values sort last either way."""
    if column == "verdict":
        return lambda row: (0, row.verdict_name)
    if column == "doubt":  # how many QC flags the image raised: "doubtful first" sorts it down
        return lambda row: (0, row.doubt)
    if column == "image_id":
        return lambda row: (0, natural_key(row.image_id))
    if column.startswith("pnps_"):
        type_name = column[len("pnps_") :]
        return lambda row: (0, row.pnps_of_type(type_name))

    def key(row: ImageRow) -> tuple[object, ...]:
        if column in row.summary:
            value = row.summary[column]
            return (1, 0.0) if math.isnan(value) else (0, value)
        text = row.metadata.get(column)
        return (1, ()) if text in (None, "") else (0, natural_key(text))

    return key


def _ordered(index: DatasetIndex, column: str, descending: bool) -> tuple[ImageRow, ...]:
    """Every row sorted by ``column`` (missing values last, ties by image id), memoised."""

    def compute() -> tuple[ImageRow, ...]:
        by_id = index.memo(("order", "image_id"), lambda: _by_image_id(index))
        if column == "image_id":
            return tuple(reversed(by_id)) if descending else by_id
        key = sort_key(column)
        keyed = [(key(row), row) for row in by_id]
        present = [pair for pair in keyed if pair[0][0] == 0]
        missing = [row for k, row in keyed if k[0] != 0]
        present.sort(key=lambda pair: pair[0], reverse=descending)  # stable: ties keep id order
        return tuple(row for _, row in present) + tuple(missing)

    return index.memo(("order", column, descending), compute)


def _by_image_id(index: DatasetIndex) -> tuple[ImageRow, ...]:
    return tuple(sorted(index.rows, key=lambda row: natural_key(row.image_id)))


def sorted_rows(index: DatasetIndex, query: ImageQuery) -> list[ImageRow]:
    """Every row matching ``query``, sorted as it asks (ties by image id)."""
    ordered = _ordered(index, query.sort, query.descending)
    if not query.filters and not query.text and query.verdict == "all":
        return list(ordered)
    return [row for row in ordered if row_matches(query, row)]


def page_of(rows: list[ImageRow], page: int, page_size: int) -> ImagePage:
    """Page ``page`` (1-based, clamped into range) of ``rows``."""
    page_size = max(MIN_PAGE_SIZE, min(MAX_PAGE_SIZE, page_size))
    n_pages = max(1, math.ceil(len(rows) / page_size))
    page = max(1, min(page, n_pages))
    start = (page - 1) * page_size
    return ImagePage(tuple(rows[start : start + page_size]), len(rows), page, n_pages, page_size)


def query_images(index: DatasetIndex, query: ImageQuery) -> ImagePage:
    """The page of rows ``query`` asks for."""
    return page_of(sorted_rows(index, query), query.page, query.page_size)


def neighbours(
    index: DatasetIndex, query: ImageQuery, image_id: str
) -> tuple[str | None, str | None, int, int]:
    """(previous id, next id, 1-based position, total) of ``image_id`` among the query's rows.

    When the image is not among them (e.g. it no longer passes the filter), position is 0
    and the neighbours are those it would have in image-id order.
    """
    ids = [row.image_id for row in sorted_rows(index, query)]
    if image_id in ids:
        at = ids.index(image_id)
        before = ids[at - 1] if at > 0 else None
        after = ids[at + 1] if at + 1 < len(ids) else None
        return before, after, at + 1, len(ids)
    later = [i for i in ids if natural_key(i) > natural_key(image_id)]
    earlier = [i for i in ids if natural_key(i) < natural_key(image_id)]
    return (earlier[-1] if earlier else None), (later[0] if later else None), 0, len(ids)


def distinct_values(index: DatasetIndex, column: str, limit: int = 200) -> tuple[str, ...]:
    """Up to ``limit`` distinct values of a metadata field, naturally sorted."""

    def compute() -> tuple[str, ...]:
        values = {row.metadata.get(column, "") for row in index.rows} - {""}
        return tuple(sorted(values, key=natural_key)[:limit])

    return index.memo(("distinct", column, limit), compute)
