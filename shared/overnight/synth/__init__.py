"""Synthetic images with ground truth, drawn from the imaging models (IMAGING_MODEL.md).

Digital cytometry: :func:`draw_field` (one field in memory) and :func:`write_dataset`
(TIFFs plus truth in the pipeline's output format), ranges in :class:`CytometryRanges`.
Skin pharmacokinetics: :mod:`overnight.synth.skin`.
"""

from overnight.synth.cytometry import (
    CellTypeSpec,
    CytometryRanges,
    FieldParams,
    SyntheticField,
    draw_field,
    image_id_for,
    write_dataset,
)

__all__ = [
    "CellTypeSpec",
    "CytometryRanges",
    "FieldParams",
    "SyntheticField",
    "draw_field",
    "image_id_for",
    "write_dataset",
]
