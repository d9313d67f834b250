"""The datasets page, a dataset's image table, its downloads and the retry of failed images."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from overnight.review.exports import cell_table_chunks, summary_csv
from overnight.review.table import distinct_values, query_images
from overnight_qc.api.deps import ReaderDep, StateDep, WriterDep
from overnight_qc.api.query import context_params, include_rejected, parse_query
from overnight_qc.core.ingest import (
    RetryOutcome,
    fetch_model_versions,
    request_reanalyse,
    request_retry,
)

router = APIRouter()

#: Distinct values above which a metadata filter is a text box rather than a list.
MAX_CHOICES = 60
#: The models a re-analysis can choose versions of, and what a version may look like.
REANALYSE_MODELS = ("cells", "pnp")
_MODEL_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


@router.get("/", response_class=HTMLResponse, name="datasets")
def datasets_page(request: Request, state: StateDep, reviewer: ReaderDep) -> Response:
    """Every dataset with its progress, owner, date, pipeline and review counts."""
    summaries = [state.dataset(dataset_id).summary for dataset_id in state.catalog.dataset_ids()]
    return request.app.state.templates.TemplateResponse(
        request,
        "datasets.html",
        {"summaries": summaries, "reviewer": reviewer, "read_only": state.token is None},
    )


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse, name="dataset")
def dataset_page(
    request: Request, dataset_id: str, state: StateDep, reviewer: ReaderDep
) -> Response:
    """The dataset's image table: filter, sort, page; failures with a retry button."""
    ds = state.dataset(dataset_id)
    index = ds.index
    query = parse_query(request.query_params, index.metadata_columns, state.settings.qc_page_size)
    page = query_images(index, query)
    choices = {c: distinct_values(index, c, MAX_CHOICES + 1) for c in index.metadata_columns}
    context = {
        "ds": ds,
        "index": index,
        "query": query,
        "page": page,
        "context": context_params(query),
        "choices": {c: v for c, v in choices.items() if len(v) <= MAX_CHOICES},
        "reviewer": reviewer,
        "read_only": state.token is None,
        "can_retry": bool(state.settings.ingest_url),
        "model_versions": _model_versions(state) if state.settings.ingest_url else {},
        "reanalyse_models": REANALYSE_MODELS,
        "corrected": state.corrected_rows(dataset_id, page.rows),
        "notice": request.query_params.get("notice", "")[:300],
    }
    return request.app.state.templates.TemplateResponse(request, "dataset.html", context)


def _kept_rows(state: StateDep, dataset_id: str, request: Request) -> tuple:
    index = state.catalog.index(dataset_id)
    keep_all = include_rejected(request.query_params)
    rows = tuple(r for r in index.rows if keep_all or r.verdict_name != "rejected")
    return index, rows


@router.get("/datasets/{dataset_id}/summary.csv", name="summary_csv")
def summary_download(
    request: Request, dataset_id: str, state: StateDep, reviewer: ReaderDep
) -> Response:
    """One row per image (rejected ones left out unless ``?all=1``), with verdicts."""
    index, rows = _kept_rows(state, dataset_id, request)
    return Response(
        summary_csv(rows, index.metadata_columns),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{dataset_id}-summary.csv"'},
    )


@router.get("/datasets/{dataset_id}/cells.csv", name="cells_csv")
def cells_download(
    request: Request, dataset_id: str, state: StateDep, reviewer: ReaderDep
) -> Response:
    """One row per cell of every kept image, with the image's metadata and verdict."""
    index, rows = _kept_rows(state, dataset_id, request)
    return StreamingResponse(
        cell_table_chunks(state.store, rows, index.metadata_columns),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{dataset_id}-cells.csv"'},
    )


@router.post("/datasets/{dataset_id}/retry", name="retry")
def retry_failed(
    request: Request, dataset_id: str, state: StateDep, reviewer: WriterDep
) -> Response:
    """Ask the ingest API to run the dataset's failed images again."""
    state.catalog.listing(dataset_id)  # 404 for an unknown dataset before calling anyone
    return _ask_ingest(
        request,
        state,
        dataset_id,
        lambda url: request_retry(
            url, dataset_id, state.token or "", state.settings.qc_ingest_timeout_s
        ),
    )


def _ask_ingest(
    request: Request,
    state: StateDep,
    dataset_id: str,
    ask: Callable[[str], RetryOutcome],
) -> Response:
    """Call the ingest API (``ask(ingest_url)``) and answer with its outcome.

    JSON for scripts (502 when the ingest API refused or failed), otherwise a redirect to the
    dataset page with the message as a notice.
    """
    if not state.settings.ingest_url:
        ok, message = False, "no ingest API configured (OVERNIGHT_INGEST_URL)"
    else:
        outcome = ask(state.settings.ingest_url)
        ok, message = outcome.ok, outcome.message
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"ok": ok, "message": message}, status_code=200 if ok else 502)
    path = request.app.url_path_for("dataset", dataset_id=dataset_id)
    return RedirectResponse(f"{path}?{urlencode({'notice': message})}", status_code=303)


def _model_versions(state: StateDep) -> dict[str, list[str]]:
    assert state.settings.ingest_url is not None
    return fetch_model_versions(
        state.settings.ingest_url, state.token or "", state.settings.qc_ingest_timeout_s
    )


@router.post("/datasets/{dataset_id}/reanalyse", name="reanalyse")
def reanalyse(
    request: Request,
    dataset_id: str,
    state: StateDep,
    reviewer: WriterDep,
    cells: str = Form("latest"),
    pnp: str = Form("latest"),
) -> Response:
    """Ask the ingest API to analyse the dataset again with the chosen model versions.

    Versions are ``latest``, ``default`` (the shipped model) or one of the registry's.
    """
    state.catalog.listing(dataset_id)  # 404 for an unknown dataset before calling anyone
    models = {"cells": cells.strip(), "pnp": pnp.strip()}
    bad = [
        f"{name}={version!r}"
        for name, version in models.items()
        if not _MODEL_VERSION.match(version)
    ]
    if bad:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"invalid model version {', '.join(bad)}: use latest, default or a listed version",
        )
    return _ask_ingest(
        request,
        state,
        dataset_id,
        lambda url: request_reanalyse(
            url, dataset_id, models, state.token or "", state.settings.qc_ingest_timeout_s
        ),
    )


@router.get("/healthz", name="healthz")
def healthz(state: StateDep) -> dict[str, str]:
    """Liveness: the service answers (storage is not contacted)."""
    return {"status": "ok"}
