"""Synthetic digital-cytometry data (IMAGING_MODEL.md §1): the generator's public API.

:func:`draw_field` draws one field of view and its ground truth in memory
(:mod:`overnight.synth.field`); :func:`write_dataset` writes many as TIFFs with their truth in
the pipeline's output format (:mod:`overnight.synth.dataset`); :class:`CytometryRanges` holds
every range they are drawn from (:mod:`overnight.synth.ranges`).
"""

from __future__ import annotations

from overnight.synth.dataset import image_id_for, write_dataset, write_field, write_image
from overnight.synth.field import (
    CHANNEL_NAMES,
    DEFAULT_RANGES,
    SyntheticField,
    draw_field,
    draw_params,
)
from overnight.synth.ranges import CellTypeSpec, CytometryRanges, FieldParams

__all__ = [
    "CHANNEL_NAMES",
    "DEFAULT_RANGES",
    "CellTypeSpec",
    "CytometryRanges",
    "FieldParams",
    "SyntheticField",
    "draw_field",
    "draw_params",
    "image_id_for",
    "write_dataset",
    "write_field",
    "write_image",
]
