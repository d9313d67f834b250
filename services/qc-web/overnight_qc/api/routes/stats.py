"""The statistics page of a dataset and its plots (SVG)."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, Response

from overnight.review.index import DatasetIndex, ImageRow
from overnight.review.overlay import type_colours
from overnight.review.plots import groups_svg, histogram_svg
from overnight.review.stats import ALL_CELLS, CountHistogram, group_stats, histograms_by_type
from overnight_qc.api.deps import ReaderDep, StateDep
from overnight_qc.api.query import include_rejected
from overnight_qc.core.state import QcState

router = APIRouter(prefix="/datasets/{dataset_id}/stats")

#: Fields offered for grouping, in order of preference, when the images carry them.
GROUP_FIELDS = ("sample", "condition", "drug", "user", "date", "instrument")


def _rows(state: QcState, dataset_id: str, request: Request) -> tuple[DatasetIndex, list[ImageRow]]:
    index = state.catalog.index(dataset_id)
    keep_all = include_rejected(request.query_params)
    return index, [r for r in index.rows if keep_all or r.verdict_name != "rejected"]


def _histograms(
    state: QcState, index: DatasetIndex, rows: list[ImageRow], corrected: bool = False
) -> list[CountHistogram]:
    """Histograms over ``rows``; ``corrected``: annotated images count their corrected cells."""
    fixed = state.corrected_rows(index.dataset_id, rows) if corrected else {}
    pairs = [
        fixed[row.image_id].cell_counts() if row.image_id in fixed else state.cell_counts(row)
        for row in rows
    ]
    types = np.concatenate([p[0] for p in pairs]) if pairs else np.array([], dtype=str)
    counts = np.concatenate([p[1] for p in pairs]) if pairs else np.array([], dtype=np.int64)
    return histograms_by_type(types, counts, index.type_names)


def _group_field(index: DatasetIndex, request: Request) -> str:
    wanted = request.query_params.get("by", "")
    if wanted in index.metadata_columns:
        return wanted
    preferred = [f for f in GROUP_FIELDS if f in index.metadata_columns]
    return (preferred or list(index.metadata_columns) or ["sample"])[0]


@router.get("", response_class=HTMLResponse, name="stats")
def stats_page(request: Request, dataset_id: str, state: StateDep, reviewer: ReaderDep) -> Response:
    """PNP-per-cell histograms per type with Poisson overlay and VMR; counts per group."""
    index, rows = _rows(state, dataset_id, request)
    field = _group_field(index, request)
    n_corrected = len(state.annotated(dataset_id) & {row.image_id for row in rows})
    context = {
        "dataset_id": dataset_id,
        "index": index,
        "histograms": _histograms(state, index, rows),
        "groups": group_stats(rows, field, index.type_names),
        "field": field,
        "n_images": len(rows),
        "n_rejected": sum(r.verdict_name == "rejected" for r in index.rows),
        "show_all": include_rejected(request.query_params),
        "reviewer": reviewer,
        "read_only": state.token is None,
        "all_cells": ALL_CELLS,
        "n_corrected": n_corrected,
        "corrected_histograms": _histograms(state, index, rows, corrected=True)
        if n_corrected
        else [],
    }
    return request.app.state.templates.TemplateResponse(request, "stats.html", context)


def _svg(data: bytes) -> Response:
    return Response(data, media_type="image/svg+xml", headers={"Cache-Control": "no-cache"})


@router.get("/histogram.svg", name="histogram_svg")
def histogram_plot(
    request: Request, dataset_id: str, state: StateDep, reviewer: ReaderDep
) -> Response:
    """The histogram of one cell type (``?type=``; ``all cells`` for every cell)."""
    index, rows = _rows(state, dataset_id, request)
    wanted = request.query_params.get("type", ALL_CELLS)
    for hist in _histograms(state, index, rows):
        if hist.cell_type == wanted:
            colour = type_colours(index.type_names).get(wanted, "#7f7f7f")
            return _svg(histogram_svg(hist, colour))
    raise HTTPException(status.HTTP_404_NOT_FOUND, "no such cell type in this dataset")


@router.get("/groups.svg", name="groups_svg")
def groups_plot(
    request: Request, dataset_id: str, state: StateDep, reviewer: ReaderDep
) -> Response:
    """Mean PNPs per cell per image, grouped by a metadata field (``?by=``)."""
    index, rows = _rows(state, dataset_id, request)
    field = _group_field(index, request)
    return _svg(groups_svg(group_stats(rows, field, index.type_names), index.type_names, field))
