"""Synthetic images with ground truth, drawn from the imaging models (IMAGING_MODEL.md).

Digital cytometry: :func:`draw_field` (one field in memory) and :func:`write_dataset`
(TIFFs plus truth in the pipeline's output format), ranges in :class:`CytometryRanges`.
"""

from overnight.synth.cytometry import SyntheticField, draw_field
from overnight.synth.dataset import image_id_for, write_dataset
from overnight.synth.ranges import CellTypeSpec, CytometryRanges, FieldParams

__all__ = [
    "CellTypeSpec",
    "CytometryRanges",
    "FieldParams",
    "SyntheticField",
    "draw_field",
    "image_id_for",
    "write_dataset",
]
