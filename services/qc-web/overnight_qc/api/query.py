"""The dataset table's query string: filters, search, verdict, sort and page.

The same parameters follow the reviewer to the image page, so next/previous walk the
filtered, sorted table they came from. Metadata filters are ``f.<field>=<value or pattern>``.
"""

from __future__ import annotations

from starlette.datastructures import QueryParams

from overnight.review.table import MAX_PAGE_SIZE, VERDICT_FILTERS, ImageQuery

FILTER_PREFIX = "f."
#: Longest accepted filter value or search text (characters).
MAX_TEXT_CHARS = 200
#: Keys of the table context carried between the dataset and image pages.
CONTEXT_KEYS = ("q", "verdict", "sort", "desc")


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def parse_query(params: QueryParams, columns: tuple[str, ...], page_size: int) -> ImageQuery:
    """An :class:`ImageQuery` from the request's parameters (unknown fields are ignored)."""
    filters = {
        key[len(FILTER_PREFIX) :]: value[:MAX_TEXT_CHARS]
        for key, value in params.items()
        if key.startswith(FILTER_PREFIX) and key[len(FILTER_PREFIX) :] in columns and value
    }
    verdict = params.get("verdict", "all")
    return ImageQuery(
        filters=filters,
        text=params.get("q", "")[:MAX_TEXT_CHARS],
        verdict=verdict if verdict in VERDICT_FILTERS else "all",
        sort=params.get("sort", "image_id")[:MAX_TEXT_CHARS] or "image_id",
        descending=params.get("desc", "") in ("1", "true", "on"),
        page=max(1, _int(params.get("page"), 1)),
        page_size=min(MAX_PAGE_SIZE, max(1, _int(params.get("per"), page_size))),
    )


def context_params(query: ImageQuery) -> dict[str, str]:
    """The query as parameters, without the page (for links that keep the table's context)."""
    params: dict[str, str] = {f"{FILTER_PREFIX}{k}": v for k, v in query.filters.items()}
    if query.text:
        params["q"] = query.text
    if query.verdict != "all":
        params["verdict"] = query.verdict
    if query.sort != "image_id":
        params["sort"] = query.sort
    if query.descending:
        params["desc"] = "1"
    return params


def include_rejected(params: QueryParams) -> bool:
    """Whether ``?all=1`` asks for rejected images too (statistics and exports)."""
    return params.get("all", "") in ("1", "true", "on")
