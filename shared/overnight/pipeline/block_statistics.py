"""A field's statistics measured block by block, equal to those of the whole field (issue 15).

Before a field too large for the budget is analysed in blocks, the steps' field-wide
statistics (:class:`~overnight.steps.field_stats.FieldStatistics`) are measured over all of
its blocks, and every block is then analysed with the field's numbers, as the whole field
would be. Each block filters its read window (core + halo) as the step does and takes the
values of its *core* on the field's sample grid (:mod:`overnight.steps.field_stats`); the
cores tile the field, so the merged samples are the whole field's. What the pipeline's steps
need is read off the pipeline (:func:`statistics_request`): a pass over the blocks for the
cell projection and the classical spots' response, and two more for the learned particle
model's scale, whose smoothing subtracts the field's background and whose clear spots pass
the field's noise. Memory: one block and the samples (each at most
:data:`~overnight.steps.field_stats.MAX_SAMPLE_POINTS` values).

Exact: the samples, so percentiles, Otsu's threshold, medians and MADs equal the whole
field's wherever the filtered core values do: SciPy's filters (the classical spots' LoG and
smoothing, the Otsu smoothing) give the same values in a window; the banded matrix products
of :mod:`overnight.steps.smoothing` (focus projection, the particle scale's smoothing) may
differ in the last bit of a float32, which moves a statistic only when it falls on a tie.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from overnight.pipeline.blocks import Block, BlockPlan
from overnight.pipeline.runner import PreparedPipeline
from overnight.steps import cells, pnp
from overnight.steps.field_stats import (
    FieldStatistics,
    grid_sample,
    intensity_range,
    otsu_threshold,
    robust_background,
    sample_step,
)

logger = logging.getLogger(__name__)

#: How far (px) the focus projection reads around a pixel: σ 1 + Laplacian + σ 8 at 4 σ.
PROJECTION_CONTEXT_PX = 4 + 1 + 32

#: A block's cell and particle channels (``ZYX`` float32) over its read window.
ReadChannels = Callable[[Block], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class StatisticsRequest:
    """Which statistics a pipeline's steps read, with the parameters they measure them by.

    Attributes
    ----------
    cell_percentiles : (float, float) or None
        ``locate_cells_ae``: the cell model's normalisation percentiles.
    cell_smooth_px : float or None
        ``locate_cells``: the smoothing before Otsu's threshold (px).
    spot_sigma : (float, float) or None
        ``detect_pnps``: the LoG's σ in ``YX`` (px) and ``Z`` (slices).
    pnp_scale : bool
        ``detect_pnps_unet``: the learned particle model's input scale.
    """

    cell_percentiles: tuple[float, float] | None = None
    cell_smooth_px: float | None = None
    spot_sigma: tuple[float, float] | None = None
    pnp_scale: bool = False

    @property
    def empty(self) -> bool:
        """Whether no step reads a field statistic."""
        return self == StatisticsRequest()

    def context_px(self) -> int:
        """How far (px) around a core pixel the statistics read: the halo they need."""
        reach = [0]
        if self.cell_percentiles is not None:
            reach.append(PROJECTION_CONTEXT_PX)
        if self.cell_smooth_px is not None:
            reach.append(PROJECTION_CONTEXT_PX + int(4 * self.cell_smooth_px + 0.5))
        if self.spot_sigma is not None:
            reach.append(int(4 * self.spot_sigma[0] + 0.5))
        if self.pnp_scale:
            from overnight.models.pnp import SCALE_CONTEXT_PX

            reach.append(SCALE_CONTEXT_PX)
        return max(reach)


def statistics_request(prepared: PreparedPipeline) -> StatisticsRequest:
    """What the steps of ``prepared`` read of the field (built-in steps; none without channels)."""
    names = {bound.spec.name for bound in prepared.pipeline.steps}
    if "select_channels" not in names:
        return StatisticsRequest()
    percentiles = None
    if "locate_cells_ae" in names:
        low, high = prepared.state_of("locate_cells_ae").model.config.normalise_percentiles
        percentiles = (float(low), float(high))
    locate = prepared.params_of("locate_cells")
    detect = prepared.params_of("detect_pnps")
    return StatisticsRequest(
        cell_percentiles=percentiles,
        cell_smooth_px=float(locate.smooth_px) if locate is not None else None,
        spot_sigma=(
            (float(detect.sigma_xy_px), float(detect.sigma_z_slices))
            if detect is not None
            else None
        ),
        pnp_scale="detect_pnps_unet" in names,
    )


def _core_sample(values: np.ndarray, step_px: int, block: Block) -> np.ndarray:
    return grid_sample(values, step_px, block.offset, block.core_in_read())


def measure_in_blocks(
    request: StatisticsRequest,
    plan: BlockPlan,
    n_z: int,
    read_channels: ReadChannels,
) -> FieldStatistics:
    """The field's statistics from all blocks of ``plan`` (``n_z`` slices), as of the whole.

    ``read_channels`` reads a block's cell and particle channels over its read window.
    """
    if request.empty:
        return FieldStatistics()
    if plan.halo_px < request.context_px():
        logger.warning(
            "blocks have %d px of context, the field statistics read %d: they may differ from "
            "the whole field's",
            plan.halo_px,
            request.context_px(),
        )
    blocks = [plan.block(row, col) for row in range(plan.n_rows) for col in range(plan.n_cols)]
    cell_step = sample_step(plan.shape_yx)
    pnp_step = pnp.background_step((n_z, *plan.shape_yx))
    samples: dict[str, list[np.ndarray]] = {
        "range": [],
        "smoothed": [],
        "response": [],
        "spots": [],
        "pnp": [],
    }
    for block in blocks:  # pass 1: everything that needs only the block
        cell_volume, pnp_volume = read_channels(block)
        if request.cell_percentiles is not None or request.cell_smooth_px is not None:
            image = cells.focus_projection(cell_volume)
            if request.cell_percentiles is not None:
                samples["range"].append(_core_sample(image, cell_step, block))
            if request.cell_smooth_px is not None:
                smoothed = cells.smoothed_projection(image, request.cell_smooth_px)
                samples["smoothed"].append(_core_sample(smoothed, cell_step, block))
        if request.spot_sigma is not None:
            response, smoothed = pnp.spot_response(pnp_volume, *request.spot_sigma)
            samples["response"].append(_core_sample(response, pnp_step, block))
            samples["spots"].append(_core_sample(smoothed, pnp_step, block))
        if request.pnp_scale:
            samples["pnp"].append(_core_sample(pnp_volume, pnp_step, block))
    merged = {name: np.concatenate(parts) for name, parts in samples.items() if parts}
    statistics = FieldStatistics(
        cell_range=(
            intensity_range(merged["range"], *request.cell_percentiles)
            if request.cell_percentiles is not None
            else None
        ),
        cell_threshold=otsu_threshold(merged["smoothed"]) if "smoothed" in merged else None,
        spot_noise_sd=robust_background(merged["response"])[1] if "response" in merged else None,
        spot_background_adu=robust_background(merged["spots"])[0] if "spots" in merged else None,
    )
    if "pnp" not in merged:
        return statistics
    background = robust_background(merged["pnp"])[0]
    del merged, samples
    return _with_pnp_scale(statistics, background, blocks, pnp_step, read_channels)


def _with_pnp_scale(
    statistics: FieldStatistics,
    background: float,
    blocks: list[Block],
    pnp_step: int,
    read_channels: ReadChannels,
) -> FieldStatistics:
    """``statistics`` with the learned particle model's scale: passes 2 and 3 over ``blocks``.

    Pass 2 measures the noise of the channel smoothed after subtracting the field's
    ``background``; pass 3 collects the cores' maxima above the field's noise.
    """
    from overnight.models.pnp import clear_peaks, scale_from_peaks, scale_smoothed

    noise = robust_background(
        np.concatenate(
            [
                _core_sample(scale_smoothed(read_channels(b)[1], background), pnp_step, b)
                for b in blocks
            ]
        )
    )[1]
    peaks = np.concatenate(
        [
            clear_peaks(scale_smoothed(read_channels(b)[1], background), noise, b.core_in_read())
            for b in blocks
        ]
    )
    scale = scale_from_peaks(background, peaks, noise)
    return dataclasses.replace(
        statistics, pnp_background_adu=scale.background_adu, pnp_spot_peak_adu=scale.spot_peak_adu
    )
