"""The image page, its pictures and tables, and the reviewer's verdict."""

from __future__ import annotations

import io
from urllib.parse import urlencode

import pandas as pd
from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from overnight.review.table import neighbours
from overnight.review.verdicts import MAX_COMMENT_CHARS, Verdict, VerdictRecord, now_utc
from overnight_qc.api.deps import ReaderDep, StateDep, WriterDep
from overnight_qc.api.query import context_params, parse_query
from overnight_qc.core.corrections import correction_history, read_corrected
from overnight_qc.core.image_view import provenance_steps

router = APIRouter(prefix="/datasets/{dataset_id}/images/{image_id}")

#: Browsers may keep pictures this long (s); their URLs change when the result does.
PICTURE_MAX_AGE_S = 3600


def _picture(data: bytes, etag: str, media_type: str = "image/png") -> Response:
    return Response(
        data,
        media_type=media_type,
        headers={"Cache-Control": f"private, max-age={PICTURE_MAX_AGE_S}", "ETag": f'"{etag}"'},
    )


@router.get("", response_class=HTMLResponse, name="image")
def image_page(
    request: Request, dataset_id: str, image_id: str, state: StateDep, reviewer: ReaderDep
) -> Response:
    """The QC overlay with zoom/pan and layers, the cells, provenance and the verdict form."""
    row = state.catalog.row(dataset_id, image_id)
    index = state.catalog.index(dataset_id)
    view = state.view(dataset_id, row)
    query = parse_query(request.query_params, index.metadata_columns, state.settings.qc_page_size)
    before, after, position, total = neighbours(index, query, image_id)
    context = {
        "dataset_id": dataset_id,
        "row": row,
        "view": view,
        "record": view.record,
        "steps": provenance_steps(view.record),
        "type_names": index.type_names,
        "context": context_params(query),
        "before": before,
        "after": after,
        "position": position,
        "total": total,
        "reviewer": reviewer,
        "read_only": state.token is None,
        "max_comment": MAX_COMMENT_CHARS,
        "version": row.signature[1][:12] if len(row.signature) > 1 else "",
        "corrected": read_corrected(state.store, row.prefix),
        "corrections": correction_history(state.store, row.prefix),
    }
    return request.app.state.templates.TemplateResponse(request, "image.html", context)


@router.get("/qc.png", name="qc_png")
def qc_png(dataset_id: str, image_id: str, state: StateDep, reviewer: ReaderDep) -> Response:
    """The QC picture as the pipeline published it."""
    row = state.catalog.row(dataset_id, image_id)
    return _picture(state.store.read_bytes(f"{row.prefix}/qc.png"), row.signature[1])


@router.get("/thumb.jpg", name="thumb_jpg")
def thumb_jpg(dataset_id: str, image_id: str, state: StateDep, reviewer: ReaderDep) -> Response:
    """A small copy of the QC picture for the table."""
    row = state.catalog.row(dataset_id, image_id)
    return _picture(state.thumbnail(row), f"t{row.signature[1]}", "image/jpeg")


@router.get("/channels/{channel}.png", name="channel_png")
def channel_png(
    dataset_id: str, image_id: str, channel: int, state: StateDep, reviewer: ReaderDep
) -> Response:
    """One channel's maximum projection over Z from the source image (404 if unreachable)."""
    row = state.catalog.row(dataset_id, image_id)
    view = state.view(dataset_id, row)
    if channel not in {c for c, _ in view.channels}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "channel not available")
    data = state.projection(view, channel)
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "source image not readable")
    return _picture(data, f"c{channel}{row.signature[1]}")


@router.get("/cells.png", name="cells_png")
def cells_png(dataset_id: str, image_id: str, state: StateDep, reviewer: ReaderDep) -> Response:
    """Cells filled by type colour: the background when the source image is unreachable."""
    row = state.catalog.row(dataset_id, image_id)
    return _picture(state.cells_picture(state.view(dataset_id, row)), f"l{row.signature[1]}")


@router.get("/cells.csv", name="image_cells_csv")
def image_cells_csv(
    dataset_id: str, image_id: str, state: StateDep, reviewer: ReaderDep
) -> Response:
    """The image's ``cells.csv`` as published."""
    row = state.catalog.row(dataset_id, image_id)
    table = pd.read_csv(io.BytesIO(state.store.read_bytes(f"{row.prefix}/cells.csv")))
    return Response(
        table.to_csv(index=False),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{image_id}-cells.csv"'},
    )


@router.get("/verdict", name="get_verdict")
def get_verdict(dataset_id: str, image_id: str, state: StateDep, reviewer: ReaderDep) -> Response:
    """The image's verdict file as JSON (``{"verdict": null}`` when unreviewed)."""
    row = state.catalog.row(dataset_id, image_id)
    if row.verdict is None:
        return JSONResponse({"image_id": image_id, "verdict": None, "history": []})
    return JSONResponse(row.verdict.model_dump(mode="json"))


@router.post("/verdict", name="post_verdict")
def post_verdict(
    request: Request,
    dataset_id: str,
    image_id: str,
    state: StateDep,
    reviewer: WriterDep,
    verdict: str = Form(...),
    comment: str = Form(""),
    go: str = Form(""),
) -> Response:
    """Save accept / reject / flag with a comment; JSON for scripts, a redirect for forms.

    ``go`` names the image to show next (a neighbour the page offered); anything else shows
    this image again.
    """
    try:
        decision = VerdictRecord(
            verdict=Verdict(verdict), comment=comment.strip(), who=reviewer.name, when=now_utc()
        )
    except (ValueError, ValidationError) as err:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid verdict: {err}"
        ) from err
    saved = state.catalog.save_verdict(dataset_id, image_id, decision)
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(saved.model_dump(mode="json"))
    index = state.catalog.index(dataset_id)
    target = go if go in index.by_id else image_id
    query = parse_query(request.query_params, index.metadata_columns, state.settings.qc_page_size)
    path = request.app.url_path_for("image", dataset_id=dataset_id, image_id=target)
    context = context_params(query)
    return RedirectResponse(f"{path}?{urlencode(context)}" if context else path, status_code=303)
