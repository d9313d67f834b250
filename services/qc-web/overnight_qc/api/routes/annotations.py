"""The image editor's API: load, preview and save a reviewer's corrections of an image.

Reads follow the pages' rule (public unless ``qc_reads_public`` is off); a save needs the
token or a login cookie with a same-origin request, like a verdict. A save names the version
it was made on; when another reviewer saved in between the answer is 409 and nothing is
written.

Earlier versions stay readable (``GET …/annotation?version=N``, 0 = the model's result) and
``GET …/annotation/versions`` lists them with what each changed. ``POST …/restore`` saves an
earlier version again as the new latest one: history is never rewritten, and the numbers are
recomputed like any other save's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from overnight.errors import AnnotationError
from overnight.review.annotation import (
    MAX_NOTE_CHARS,
    Annotation,
    annotation_versions,
    load_record,
    save_annotation,
)
from overnight.review.history import Snapshot, version_changes
from overnight_qc.api.deps import ReaderDep, StateDep, WriterDep
from overnight_qc.core.corrections import correction_history, history_key, version_list
from overnight_qc.core.editing import (
    EditRequest,
    EditState,
    apply_operations,
    base_state,
    model_state,
    state_json,
    to_annotation,
)
from overnight_qc.core.state import QcState

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
    version: int | None = Query(None, ge=0),
) -> JSONResponse:
    """The latest corrections, the model's result when there are none, or ``?version=N``.

    ``?version=0`` is the model's result. ``version`` in the answer is what a save must name
    as ``base_version`` (null: none yet).
    """
    row = state.catalog.row(dataset_id, image_id)
    history = _history(state, row.prefix)
    latest = history[-1]["version"] if history else None
    loaded = (version or None) if version is not None else latest
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
    annotation = to_annotation(edited, reviewer.name, edit.note.strip())
    return _save_as_latest(state, dataset_id, row.prefix, edited, annotation, edit.base_version)


@router.get("/versions", name="annotation_versions")
def list_versions(
    dataset_id: str, image_id: str, state: StateDep, reviewer: ReaderDep
) -> JSONResponse:
    """Every version, oldest first: who, when, note, counts and what it changed.

    ``model`` holds the model result's counts; each version's ``changes`` (cells added,
    removed, merged, split, reshaped, retyped; particle spots added, removed, re-counted) are
    from its parent, the model's result for v1; ``summary`` says them in one line.
    """
    row = state.catalog.row(dataset_id, image_id)
    records = correction_history(state.store, row.prefix)
    model = model_state(state.store, row.prefix)
    origin = Snapshot(model.labels, model.spots, model.cell_types)
    changes = state.changes.get(
        (row.prefix, row.signature[:2], history_key(records)),
        lambda: version_changes(state.store, row.prefix, origin),
    )
    return JSONResponse(version_list(records, changes, origin))


class RestoreRequest(BaseModel):
    """Save version ``version`` (0: the model's result) again on top of ``base_version``."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(..., ge=0)
    base_version: int | None = Field(None, ge=1)
    note: str = Field("", max_length=MAX_NOTE_CHARS)


@router.post("/restore", name="restore_annotation")
def restore_annotation(
    dataset_id: str, image_id: str, ask: RestoreRequest, state: StateDep, reviewer: WriterDep
) -> JSONResponse:
    """Save an earlier version as the next one, with ``restored_from`` in its record.

    409 when ``base_version`` is no longer the latest; 422 when ``version`` is not stored or
    is already the latest (nothing to restore).
    """
    row = state.catalog.row(dataset_id, image_id)
    stored = annotation_versions(state.store, row.prefix)
    if ask.version == (stored[-1] if stored else 0):
        what = f"version {ask.version}" if ask.version else "the model's result"
        raise AnnotationError(f"{what} is already the latest; there is nothing to restore")
    restored = base_state(state.store, row.prefix, ask.version or None)
    annotation = to_annotation(restored, reviewer.name, ask.note.strip())
    annotation = replace(annotation, restored_from=ask.version)
    return _save_as_latest(state, dataset_id, row.prefix, restored, annotation, ask.base_version)


def _save_as_latest(
    state: QcState,
    dataset_id: str,
    prefix: str,
    shown: EditState,
    annotation: Annotation,
    base_version: int | None,
) -> JSONResponse:
    """Save ``annotation`` as the version after ``base_version``; answer with ``shown``.

    409 (:class:`AnnotationConflictError`) when another save came first; nothing is written then.
    """
    saved = save_annotation(state.store, prefix, annotation, expected_version=base_version)
    state.forget_annotated(dataset_id)
    restore = {} if saved.restored_from is None else {"restored_from": saved.restored_from}
    return JSONResponse(
        {
            **state_json(shown),
            "version": saved.version,
            "latest": saved.version,
            **restore,
            "author": saved.author,
            "created_at": saved.created_at,
        }
    )
