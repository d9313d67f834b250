"""The QC editor's operations: what the browser sends, applied with :mod:`overnight.review.edits`.

The browser sends the list of operations made since the version it loaded, never pixels:
the requests stay small whatever the field's size, every operation is checked and applied
by the same pure, tested functions (ids stay unique because the server assigns them), and
undo/redo in the page is just dropping or restoring the last operation. Each preview and
the final save replay the list on the loaded version, so what is saved is exactly what the
reviewer saw.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from overnight.errors import AnnotationError
from overnight.review import edits
from overnight.review.annotation import (
    MAX_NOTE_CHARS,
    MAX_TYPE_CHARS,
    Annotation,
    load_annotation,
    model_versions_of,
)
from overnight.review.overlay import id_map_png, read_labels, read_table
from overnight.review.stats import corrected_cells_table, spot_cell_ids
from overnight.storage.base import ObjectStore

#: Most operations in one request, most points in one drawn line or polygon, and in all.
MAX_OPERATIONS = 2000
MAX_POINTS = 4000
MAX_TOTAL_POINTS = 40000
#: A click selects the particle within this distance (image px).
PICK_RADIUS_PX = 6.0

Coordinate = Annotated[float, Field(ge=-1e6, le=1e6)]
PointIn = tuple[Coordinate, Coordinate]
Points = Annotated[list[PointIn], Field(max_length=MAX_POINTS)]
CellId = Annotated[int, Field(ge=1, lt=2**24)]


class _Op(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DeleteCell(_Op):
    """Remove a cell (its pixels become background)."""

    op: Literal["delete_cell"]
    cell_id: CellId


class MergeCells(_Op):
    """Join ``other_id`` into ``keep_id``."""

    op: Literal["merge_cells"]
    keep_id: CellId
    other_id: CellId


class SplitCell(_Op):
    """Cut a cell along a line (y, x px); ``cell_id`` None: the cell the line crosses most."""

    op: Literal["split_cell"]
    line: Points
    cell_id: CellId | None = None


class DrawPolygon(_Op):
    """Add a cell inside a polygon (y, x px vertices), on background pixels."""

    op: Literal["draw_polygon"]
    polygon: Points


class DrawBrush(_Op):
    """Add a cell painted with a round brush along a stroke (y, x px)."""

    op: Literal["draw_brush"]
    stroke: Points
    radius_px: float = Field(3.0, gt=0, le=200)


class SetCellType(_Op):
    """Give a cell a type name."""

    op: Literal["set_cell_type"]
    cell_id: CellId
    cell_type: str = Field(..., min_length=1, max_length=MAX_TYPE_CHARS)


class AddSpot(_Op):
    """Add a particle spot at (y, x) px."""

    op: Literal["add_spot"]
    y: Coordinate
    x: Coordinate
    multiplicity: int = Field(1, ge=1, le=99)


class RemoveSpot(_Op):
    """Remove the spot nearest (y, x) px."""

    op: Literal["remove_spot"]
    y: Coordinate
    x: Coordinate


class SetMultiplicity(_Op):
    """Set how many particles the spot nearest (y, x) px holds."""

    op: Literal["set_multiplicity"]
    y: Coordinate
    x: Coordinate
    multiplicity: int = Field(..., ge=1, le=99)


Operation = Annotated[
    DeleteCell
    | MergeCells
    | SplitCell
    | DrawPolygon
    | DrawBrush
    | SetCellType
    | AddSpot
    | RemoveSpot
    | SetMultiplicity,
    Field(discriminator="op"),
]


class EditRequest(BaseModel):
    """A preview or save: the version the page loaded (None: the model's result) and edits."""

    model_config = ConfigDict(extra="forbid")

    base_version: int | None = Field(None, ge=1)
    ops: list[Operation] = Field(default_factory=list, max_length=MAX_OPERATIONS)
    note: str = Field("", max_length=MAX_NOTE_CHARS)

    @model_validator(mode="after")
    def _bounded_work(self) -> EditRequest:
        """Refuse requests whose drawings hold more points than any reviewer makes."""
        points = sum(
            len(getattr(op, "line", ()))
            + len(getattr(op, "polygon", ()))
            + len(getattr(op, "stroke", ()))
            for op in self.ops
        )
        if points > MAX_TOTAL_POINTS:
            raise ValueError(f"{points} drawn points; at most {MAX_TOTAL_POINTS} per request")
        return self


@dataclass(frozen=True)
class EditState:
    """Labels (YX), spots ((N, 3): y_px, x_px, multiplicity) and cell types being edited."""

    labels: np.ndarray
    spots: np.ndarray
    cell_types: dict[int, str]
    model_versions: dict[str, str]


class OperationError(AnnotationError):
    """Operation number ``index`` (0-based) of a request could not be applied."""

    def __init__(self, index: int, problem: str) -> None:
        super().__init__(f"edit {index + 1}: {problem}")
        self.index = index


def _crossed_cell(labels: np.ndarray, line: list[PointIn]) -> int:
    under = labels[edits.polyline_mask(labels.shape, line)]
    under = under[under > 0]
    if not under.size:
        raise AnnotationError("the line crosses no cell; draw it across the cell to split")
    return int(np.bincount(under).argmax())


def apply_operation(state: EditState, op: Operation) -> EditState:
    """``state`` after ``op``; :class:`AnnotationError` when it does not apply."""
    labels, spots, types = state.labels, state.spots, state.cell_types
    shape = (int(labels.shape[0]), int(labels.shape[1]))
    match op:
        case DeleteCell():
            labels = edits.delete_cell(labels, op.cell_id)
            types = edits.prune_cell_types(labels, types)
        case MergeCells():
            labels = edits.merge_cells(labels, op.keep_id, op.other_id)
            types = edits.prune_cell_types(labels, types)
        case SplitCell():
            cell_id = op.cell_id or _crossed_cell(labels, op.line)
            labels, new_id = edits.split_cell(labels, cell_id, op.line)
            if cell_id in types:
                types = {**types, new_id: types[cell_id]}
        case DrawPolygon():
            labels, _ = edits.draw_cell(labels, edits.polygon_mask(shape, op.polygon))
        case DrawBrush():
            mask = edits.brush_mask(shape, op.stroke, op.radius_px)
            labels, _ = edits.draw_cell(labels, mask)
        case SetCellType():
            types = edits.set_cell_type(labels, types, op.cell_id, op.cell_type)
        case AddSpot():
            spots = edits.add_spot(spots, op.y, op.x, shape, op.multiplicity)
        case RemoveSpot():
            spots = edits.remove_spot(spots, op.y, op.x, PICK_RADIUS_PX)
        case SetMultiplicity():
            spots = edits.set_spot_multiplicity(spots, op.y, op.x, op.multiplicity, PICK_RADIUS_PX)
    return replace(state, labels=labels, spots=spots, cell_types=types)


def apply_operations(state: EditState, ops: list[Operation]) -> EditState:
    """``state`` after every operation in order; :class:`OperationError` names the failing one."""
    for index, op in enumerate(ops):
        try:
            state = apply_operation(state, op)
        except AnnotationError as err:
            raise OperationError(index, str(err)) from err
    return state


def model_state(store: ObjectStore, image_prefix: str) -> EditState:
    """The model's result as the starting point of a first annotation."""
    labels = read_labels(store.read_bytes(f"{image_prefix}/labels.tif")).astype(np.uint32)
    pnps = read_table(store.read_bytes(f"{image_prefix}/pnps.csv"))
    cells = read_table(store.read_bytes(f"{image_prefix}/cells.csv"))
    multiplicity = pnps["multiplicity"] if "multiplicity" in pnps else np.ones(len(pnps))
    spots = np.column_stack([pnps["y"], pnps["x"], multiplicity]).astype(np.float64)
    present = set(np.unique(labels).tolist())
    types = {
        int(c): str(t)
        for c, t in zip(cells["cell_id"], cells["cell_type"].fillna(""), strict=True)
        if str(t) and int(c) in present
    }
    versions = result_model_versions(store, image_prefix)
    return EditState(labels, spots.reshape(-1, 3), types, versions)


def result_model_versions(store: ObjectStore, image_prefix: str) -> dict[str, str]:
    """The model versions the image's result was made with (its ``result.json``)."""
    record = json.loads(store.read_bytes(f"{image_prefix}/result.json"))
    return model_versions_of(record.get("versions") or {})


def base_state(store: ObjectStore, image_prefix: str, version: int | None) -> EditState:
    """The state edits start from: annotation ``version``, or the model's result (None).

    Raises
    ------
    AnnotationError
        When ``version`` is not stored (the page is older than the storage: reload).
    """
    if version is None:
        return model_state(store, image_prefix)
    annotation = load_annotation(store, image_prefix, version)
    if annotation is None:
        raise AnnotationError(f"annotation version {version} of this image does not exist")
    versions = result_model_versions(store, image_prefix)
    return EditState(annotation.labels, annotation.spots, annotation.cell_types, versions)


def to_annotation(state: EditState, author: str, note: str) -> Annotation:
    """The annotation to save from an edited state (its version is assigned when saved)."""
    return Annotation(
        labels=state.labels,
        spots=state.spots,
        cell_types=edits.prune_cell_types(state.labels, state.cell_types),
        author=author,
        created_at="",
        version=0,
        parent_version=None,
        model_versions=state.model_versions,
        note=note,
    )


def state_json(state: EditState) -> dict[str, Any]:
    """What the editor draws: the id map (PNG data URL), cells with counts, spots."""
    cells = corrected_cells_table(state.labels, state.spots, state.cell_types)
    under = spot_cell_ids(state.labels, state.spots)
    png = base64.b64encode(id_map_png(state.labels)).decode("ascii")
    return {
        "height": int(state.labels.shape[0]),
        "width": int(state.labels.shape[1]),
        "id_map": f"data:image/png;base64,{png}",
        "cells": cells.to_dict("records"),
        "spots": [
            [round(float(y), 2), round(float(x), 2), int(m), int(c)]
            for (y, x, m), c in zip(state.spots.tolist(), under.tolist(), strict=True)
        ],
        "cell_count": len(cells),
        "particle_count": int(state.spots[:, 2].sum()) if len(state.spots) else 0,
    }
