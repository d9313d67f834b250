"""Fitting the cell model's input scale to corrected fields whose cells are another size.

A lab whose microscope magnifies more than the generator's (or whose cells are larger) shows
the network cells bigger than any it learned; it then splits and merges them, and a few
corrected fields cannot teach it every size. Like Cellpose's cell diameter, the cell model's
``input_scale`` resizes the image before the network instead (0.625 shows cells 1.6× the
trained size at the trained size; :meth:`overnight.models.cells.CellModel.probabilities`),
and the watershed reads its pixel parameters in the resized pixels. A fine-tune from reviews
fits it by cell F1 on the corrected fields (:func:`fit_input_scale`) and then trains on the
corrected fields resized by it (:func:`rescale_field`), so the network keeps one cell size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from overnight.models.cells import (
    CellModel,
    cell_input,
    instance_labels,
    resize_labels,
    resize_yx,
    scaled_shape,
)
from overnight.models.cells_postprocess import pooled_f1
from overnight.models.datasets import TrainingField

#: The scales tried: cells from 2× the trained size (0.5) to 0.5× (2.0).
SCALE_GRID: tuple[float, ...] = (0.5, 0.55, 0.625, 0.7, 0.8, 0.9, 1.0, 1.12, 1.25, 1.43, 1.6, 2.0)
#: Fewest true cells on the corrected fields for a fit: below it the initial scale stays.
MIN_SCALE_CELLS = 20
#: Smallest gain of cell F1 over the initial scale for another scale to be taken (about one
#: cell in 50: a new scale must win by more than one lucky match).
MIN_SCALE_GAIN = 0.02


@dataclass(frozen=True)
class ScaleFit:
    """The chosen input scale and cell F1 on the corrected fields at each tried scale."""

    initial: float
    chosen: float
    f1_by_scale: dict[float, float]
    n_true_cells: int

    def line(self) -> str:
        """One provenance line for the model card."""
        if self.chosen == self.initial and not self.f1_by_scale:
            return (
                f"input scale kept at {self.initial:g}: {self.n_true_cells} corrected cells, "
                f"fewer than {MIN_SCALE_CELLS}"
            )
        before, after = self.f1_by_scale[self.initial], self.f1_by_scale[self.chosen]
        return (
            f"input scale {self.initial:g} -> {self.chosen:g} by cell F1 on "
            f"{self.n_true_cells} corrected cells ({before:.3f} -> {after:.3f})"
        )


def rescale_field(field: TrainingField, scale: float) -> TrainingField:
    """``field`` resized by ``scale`` in ``YX``: image (linear, float32), labels, particles.

    Its pixel size grows by ``1 / scale``; slices stay.
    """
    if scale == 1.0:
        return field
    shape_yx = scaled_shape((int(field.labels.shape[0]), int(field.labels.shape[1])), scale)
    zcyx = np.asarray(field.image, np.float32)
    yxzc = resize_yx(np.moveaxis(zcyx, (2, 3), (0, 1)), shape_yx)
    pnps = field.pnps
    if pnps is not None and len(pnps):
        pnps = pnps.assign(y=pnps["y"] * scale, x=pnps["x"] * scale)
    return replace(
        field,
        image=np.ascontiguousarray(np.moveaxis(yxzc, (0, 1), (2, 3))),
        labels=resize_labels(field.labels, shape_yx),
        pnps=pnps,
        pixel_size_um=None if field.pixel_size_um is None else field.pixel_size_um / scale,
    )


def labels_at_scale(model: CellModel, field: TrainingField, scale: float) -> np.ndarray:
    """The cell model's instance labels of ``field`` with its input scale set to ``scale``."""
    config = model.config.model_copy(update={"input_scale": scale})
    scaled = model.with_config(config)
    channel = field.image[:, min(config.channel_index, field.image.shape[1] - 1)]
    probabilities, _ = scaled.probabilities(cell_input(np.asarray(channel, np.float32), config))
    return instance_labels(probabilities, config)


def fit_input_scale(model: CellModel, fields: list[TrainingField]) -> ScaleFit:
    """The input scale of :data:`SCALE_GRID` with the best cell F1 on ``fields``.

    The model's own scale stays unless another wins by :data:`MIN_SCALE_GAIN`, or when the
    fields hold fewer than :data:`MIN_SCALE_CELLS` true cells (nothing is tried then).
    """
    initial = model.config.input_scale
    n_true = sum(int(np.count_nonzero(np.unique(f.labels))) for f in fields)
    if n_true < MIN_SCALE_CELLS:
        return ScaleFit(initial, initial, {}, n_true)
    truths = [f.labels for f in fields]
    f1 = {
        scale: pooled_f1(truths, [labels_at_scale(model, f, scale) for f in fields])
        for scale in sorted({*SCALE_GRID, initial})
    }
    best = max(f1, key=lambda scale: (f1[scale], -abs(np.log(scale / initial))))
    chosen = best if f1[best] >= f1[initial] + MIN_SCALE_GAIN else initial
    return ScaleFit(initial, chosen, f1, n_true)
