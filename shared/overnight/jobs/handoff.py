"""What the segmentation stage hands to the counting stage, as one ``.npz`` object.

The counting worker re-reads the image (it needs the PNP channel) and gets the cell
segmentation from here: the values the counting stage's steps require that only the
segmentation stage provides (``cell_image``, ``cell_labels``, ``cell_types`` for the built-in
pipelines), plus facts for ``result.json`` (read time, metadata, warnings, step timings).
Arrays are stored as they are (``YX`` label and projection images); ``CellTypes`` as three
aligned arrays. One object, written atomically, so a half-written hand-off is never read.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from overnight.errors import StepError
from overnight.pipeline.definition import Pipeline
from overnight.steps.classify import CellTypes

_INFO = "__info__"
_TYPES_SUFFIXES = ("__ids", "__names", "__confidence")


@dataclass(frozen=True)
class Handoff:
    """Segmentation outputs for the counting stage, and facts for the final record."""

    values: Mapping[str, Any]
    read_s: float = 0.0
    timings_s: Mapping[str, float] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def handoff_names(pipeline: Pipeline, first: str, then: str) -> tuple[str, ...]:
    """Names the steps of stage ``then`` require that only stage ``first`` provides, sorted."""
    provided_first: set[str] = set()
    provided_then: set[str] = set(pipeline.inputs)
    required_then: set[str] = set()
    for bound in pipeline.steps:
        if bound.in_stage(then):
            required_then.update(n for n in bound.spec.requires if n not in provided_then)
            provided_then.update(bound.spec.provides)
        if bound.in_stage(first):
            provided_first.update(bound.spec.provides)
    return tuple(sorted(required_then & provided_first))


def pack_handoff(handoff: Handoff) -> bytes:
    """Serialise a hand-off as ``.npz`` bytes (no pickle).

    Uncompressed: zlib on a float ``YX`` image costs ~0.3 s per 512² field, more than moving
    the 2 MB (measured for ``bench.stack``).
    """
    arrays: dict[str, np.ndarray] = {}
    for name, value in handoff.values.items():
        if isinstance(value, CellTypes):
            arrays[name + "__ids"] = np.asarray(value.cell_ids, dtype=np.int64)
            arrays[name + "__names"] = np.asarray(value.names, dtype=np.str_)
            arrays[name + "__confidence"] = np.asarray(value.confidence, dtype=np.float64)
        elif isinstance(value, np.ndarray):
            arrays[name] = value
        else:
            raise StepError(
                f"cannot hand {name!r} ({type(value).__name__}) from one stage to the next"
            )
    info = {
        "read_s": handoff.read_s,
        "timings_s": dict(handoff.timings_s),
        "metadata": dict(handoff.metadata),
        "warnings": list(handoff.warnings),
    }
    arrays[_INFO] = np.asarray(json.dumps(info, default=str))
    buffer = io.BytesIO()
    # numpy's stubs type the keyword arrays as ``allow_pickle: bool``.
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def unpack_handoff(data: bytes) -> Handoff:
    """Read bytes written by :func:`pack_handoff`."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    info = json.loads(str(arrays.pop(_INFO)))
    values: dict[str, Any] = {}
    for name in sorted(arrays):
        if name.endswith("__ids"):
            base = name.removesuffix("__ids")
            values[base] = CellTypes(
                cell_ids=arrays[base + "__ids"],
                names=tuple(str(n) for n in arrays[base + "__names"]),
                confidence=arrays[base + "__confidence"],
            )
        elif not name.endswith(_TYPES_SUFFIXES):
            values[name] = arrays[name]
    return Handoff(
        values=values,
        read_s=float(info["read_s"]),
        timings_s=info["timings_s"],
        metadata=info["metadata"],
        warnings=tuple(info["warnings"]),
    )
