"""The PK page of a skin pharmacokinetics dataset: NCA table, plots, signals, timepoints."""

from __future__ import annotations

from typing import Any

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from overnight.errors import StorageError
from overnight.review.listing import DatasetListing
from overnight.review.overlay import thumbnail_jpeg
from overnight.review.pk import (
    HEATMAP,
    NCA_VALUES,
    OVERLAY,
    is_pk_dataset,
    overlay_key,
    plot_key,
    read_pk_dataset,
    read_timepoints,
    table_key,
)
from overnight_qc.api.deps import ReaderDep, StateDep
from overnight_qc.core.state import QcState

router = APIRouter(prefix="/datasets/{dataset_id}/pk")

#: Browsers may keep pictures this long (s); the ETag changes when the file does.
PICTURE_MAX_AGE_S = 3600

#: NCA columns as the table heads them, and the decimals each is shown with.
NCA_HEADS: dict[str, tuple[str, int]] = {
    "cmax": ("Cmax", 2),
    "tmax": ("tmax", 1),
    "clast": ("Clast", 2),
    "tlast": ("tlast", 1),
    "auc_last": ("AUClast", 0),
    "auc_inf_obs": ("AUCinf,obs", 0),
    "lambda_z": ("λz", 5),
    "half_life": ("t½", 1),
    "r2_adj": ("R²adj", 3),
    "n_points_lambda_z": ("n λz", 0),
}


#: Captions of the plots ``pk run`` writes; other plots show under their file name.
PLOT_CAPTIONS = {
    "concentration_time.png": "Drug signal over time per compartment, pooled over depth (▼ Cmax).",
    "depth_profiles.png": "Drug signal over time per compartment, one line per depth.",
}
#: The NCA table as a picture (for slides): linked, not shown, since the page has the table.
NCA_TABLE_PLOT = "nca_table.png"


def _files(listing: DatasetListing) -> dict[str, set[str]]:
    return {image_id: set(f.files) for image_id, f in listing.images.items()}


def _overlay(state: QcState, dataset_id: str, image_id: str) -> tuple[str, str]:
    """Key and tag of a timepoint's overlay (404 unless ``series.json`` lists a timepoint)."""
    listing = state.catalog.listing(dataset_id)  # validates the id; 404 for an unknown one
    timepoints = read_timepoints(state.store, dataset_id, listing.prefix, _files(listing))
    key = overlay_key(timepoints, listing.prefix, image_id)
    info = listing.images[image_id].files[OVERLAY]
    return key, info.etag or f"{info.size}-{info.mtime}"


def _picture(data: bytes, etag: str, media_type: str = "image/png") -> Response:
    return Response(
        data,
        media_type=media_type,
        headers={"Cache-Control": f"private, max-age={PICTURE_MAX_AGE_S}", "ETag": f'"{etag}"'},
    )


@jinja2.pass_context
def pk_path_of(context: Any, dataset_id: str) -> str | None:
    """The PK page's path when ``dataset_id`` is a skin-PK dataset, else None (templates)."""
    request: Request = context["request"]
    state: QcState = request.app.state.qc
    try:
        prefix = state.catalog.listing(dataset_id).prefix
        if not is_pk_dataset(state.store, prefix):
            return None
    except StorageError:  # no link rather than a broken dataset page
        return None
    return str(request.app.url_path_for("pk", dataset_id=dataset_id))


@router.get("", response_class=HTMLResponse, name="pk")
def pk_page(request: Request, dataset_id: str, state: StateDep, reviewer: ReaderDep) -> Response:
    """NCA per compartment with units, the depth × time heatmap and other plots, timepoints."""
    listing = state.catalog.listing(dataset_id)  # validates the id; 404 for an unknown one
    pk = read_pk_dataset(state.store, dataset_id, listing.prefix, _files(listing))
    figures = [
        (name, PLOT_CAPTIONS.get(name, name))
        for name in pk.plots
        if name not in (HEATMAP, NCA_TABLE_PLOT)
    ]
    context = {
        "dataset_id": dataset_id,
        "pk": pk,
        "heatmap": HEATMAP if HEATMAP in pk.plots else None,
        "nca_table_plot": NCA_TABLE_PLOT if NCA_TABLE_PLOT in pk.plots else None,
        "figures": figures,
        "columns": [(c, *NCA_HEADS[c], pk.units.of(c)) for c in NCA_VALUES],
        "reviewer": reviewer,
        "read_only": state.token is None,
    }
    return request.app.state.templates.TemplateResponse(request, "pk.html", context)


@router.get("/plots/{name}", name="pk_plot")
def pk_plot(dataset_id: str, name: str, state: StateDep, reviewer: ReaderDep) -> Response:
    """One plot of ``<dataset>/pk/``, only when the listing of that folder holds it."""
    prefix = state.catalog.listing(dataset_id).prefix
    key, info = plot_key(state.store, prefix, name)
    return _picture(state.store.read_bytes(key), info.etag or f"{info.size}-{info.mtime}")


@router.get("/tables/{name}", name="pk_table")
def pk_table(dataset_id: str, name: str, state: StateDep, reviewer: ReaderDep) -> Response:
    """``nca.csv``, ``nca_depth.csv`` or ``profiles.csv`` as a download."""
    prefix = state.catalog.listing(dataset_id).prefix
    return Response(
        state.store.read_bytes(table_key(prefix, name)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{dataset_id}-{name}"'},
    )


@router.get("/timepoints/{image_id}/overlay.png", name="pk_overlay")
def pk_overlay(dataset_id: str, image_id: str, state: StateDep, reviewer: ReaderDep) -> Response:
    """A timepoint's compartment overlay as the pipeline published it."""
    key, tag = _overlay(state, dataset_id, image_id)
    return _picture(state.store.read_bytes(key), tag)


@router.get("/timepoints/{image_id}/thumb.jpg", name="pk_thumb")
def pk_thumb(dataset_id: str, image_id: str, state: StateDep, reviewer: ReaderDep) -> Response:
    """A small JPEG of a timepoint's overlay, for the timepoint strip."""
    key, tag = _overlay(state, dataset_id, image_id)
    data = state.pictures.get(
        ("pk-thumb", key, tag), lambda: thumbnail_jpeg(state.store.read_bytes(key), 320)
    )
    return _picture(data, f"t{tag}", "image/jpeg")
