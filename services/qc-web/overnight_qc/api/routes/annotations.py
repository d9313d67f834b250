"""The image editor's API: load, preview and save a reviewer's corrections of an image.

Reads follow the pages' rule (public unless ``qc_reads_public`` is off); a save needs the
token or a login cookie with a same-origin request, like a verdict. A save names the version
it was made on; when another reviewer saved in between the answer is 409 and nothing is
written.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from overnight.review.annotation import (
    annotation_versions,
    load_record,
    save_annotation,
)
from overnight_qc.api.deps import ReaderDep, StateDep, WriterDep
from overnight_qc.core.editing import (
    EditRequest,
    apply_operations,
    base_state,
    state_json,
    to_annotation,
)

router = APIRouter(prefix="/datasets/{dataset_id}/images/{image_id}/annotation")


def _history(state: StateDep, prefix: str) -> list[dict[str, Any]]:
    versions = annotation_versions(state.store, prefix)
    records = (load_record(state.store, prefix, version) for version in versions)
    return [
        r.model_dump(mode="json", exclude={"files", "cell_types"}) for r in records if r is not None
    ]


@router.get("", name="get_annotation")
def get_annotation(
    dataset_id: str,
    image_id: str,
    state: StateDep,
    reviewer: ReaderDep,
    version: int | None = Query(None, ge=1),
) -> JSONResponse:
    """The latest corrections (or ``?version=``), the model's result when there are none.

    ``version`` in the answer is what a save must name as ``base_version`` (null: none yet).
    """
    row = state.catalog.row(dataset_id, image_id)
    history = _history(state, row.prefix)
    latest = history[-1]["version"] if history else None
    loaded = version if version is not None else latest
    body = state_json(base_state(state.store, row.prefix, loaded))
    return JSONResponse({**body, "version": loaded, "latest": latest, "history": history})


@router.post("/preview", name="preview_annotation")
def preview_annotation(
    dataset_id: str, image_id: str, edit: EditRequest, state: StateDep, reviewer: ReaderDep
) -> JSONResponse:
    """The loaded version with ``ops`` applied, nothing saved (what the editor draws)."""
    row = state.catalog.row(dataset_id, image_id)
    edited = apply_operations(base_state(state.store, row.prefix, edit.base_version), edit.ops)
    return JSONResponse({**state_json(edited), "version": edit.base_version})


@router.post("", name="save_annotation")
def post_annotation(
    dataset_id: str, image_id: str, edit: EditRequest, state: StateDep, reviewer: WriterDep
) -> JSONResponse:
    """Apply ``ops`` to ``base_version`` and save the result as the next version.

    409 when ``base_version`` is no longer the latest; 422 when an edit does not apply.
    """
    row = state.catalog.row(dataset_id, image_id)
    edited = apply_operations(base_state(state.store, row.prefix, edit.base_version), edit.ops)
    saved = save_annotation(
        state.store,
        row.prefix,
        to_annotation(edited, reviewer.name, edit.note.strip()),
        expected_version=edit.base_version,
    )
    state.forget_annotated(dataset_id)
    return JSONResponse(
        {
            **state_json(edited),
            "version": saved.version,
            "latest": saved.version,
            "author": saved.author,
            "created_at": saved.created_at,
        }
    )
