"""Analyse a field too large for the memory budget block by block, in bounded memory.

:func:`run_in_blocks` reads each block's window of every z-slice and channel
(:mod:`overnight.imaging.regions`), runs the pipeline's own steps on it as on a small field,
keeps the block's cells (:func:`overnight.pipeline.blocks.keep_block_cells`), paints them into
a :class:`~overnight.pipeline.label_band.LabelBand` whose final rows stream into ``labels.tif``
tile by tile, and appends their table rows. What the run holds besides one block is the label
band (about a block's height x the field's width, uint32), the tables and a downsampled
overview for the QC picture, so peak memory depends on the block size, not the field's.

Steps that scale or threshold by a statistic of the whole field get the field's, measured
over all blocks before any is analysed (:mod:`overnight.pipeline.block_statistics`), so a
block is segmented as the same pixels of the whole field would be.

The QC flags of a field are measured per block and merged, and its QC picture is drawn from a
downsampled overview (:mod:`overnight.pipeline.block_overview`).

``--format ome-zarr`` (:func:`ome_zarr_in_blocks`): the input is read again by region and the
labels from the stitched ``labels.tif``, one block-sized window at a time, into an OME-Zarr
on disk (:mod:`overnight.results.ome_zarr_blocks`), published file by file.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from overnight.errors import InvalidImageError, StepError
from overnight.imaging.limits import ReadLimits, check_streamable, needs_blocks
from overnight.imaging.regions import FieldRegions, can_read_regions, open_regions
from overnight.pipeline.block_overview import FieldOverview, merge_qc
from overnight.pipeline.block_statistics import measure_in_blocks, statistics_request
from overnight.pipeline.blocks import Block, BlockPlan, keep_block_cells, plan_blocks
from overnight.pipeline.builtin_steps import FIELD_STATISTICS
from overnight.pipeline.label_band import LabelBand, tiles_of_rows
from overnight.pipeline.runner import PipelineRun, PreparedPipeline
from overnight.results.artefacts import write_labels_tiff_tiles
from overnight.results.ome_zarr import OME_ZARR_NAME
from overnight.results.ome_zarr_blocks import (
    FolderFiles,
    tiff_window_reader,
    write_ome_zarr_by_window,
)
from overnight.steps.channels import select_channel
from overnight.steps.field_stats import FieldStatistics
from overnight.steps.tables import CELL_COLUMNS, PNP_COLUMNS

logger = logging.getLogger(__name__)

#: Side (px) of the label TIFF's tiles and of the rows the band releases at a time.
LABEL_TILE_PX = 256
#: What a pipeline must provide to be analysed in blocks.
BLOCK_OUTPUTS = ("cell_labels", "cells_table", "pnps_table")
#: The QC picture's legend and size when the pipeline has no ``qc_image`` step to say.
TYPE_NAMES = ("lymphocyte", "monocyte")
MAX_SIDE_PX = 1024


class _BlockStitching:
    """The state of one field's block run: band, overview, tables, QC reports, timings."""

    def __init__(
        self, prepared: PreparedPipeline, regions: FieldRegions, image_id: str, plan: BlockPlan
    ) -> None:
        self.prepared, self.regions, self.image_id, self.plan = prepared, regions, image_id, plan
        height, width = plan.shape_yx
        capacity = plan.core_px + 2 * plan.halo_px
        self.band = LabelBand(height, width, capacity, LABEL_TILE_PX)
        qc_params = prepared.params_of("qc_image")  # None: the QC picture's defaults
        self.type_names: tuple[str, ...] = tuple(getattr(qc_params, "type_names", TYPE_NAMES))
        self.max_side_px = int(getattr(qc_params, "max_side_px", MAX_SIDE_PX))
        self.overview = FieldOverview(plan.shape_yx, self.max_side_px)
        self.cells: list[pd.DataFrame] = []
        self.pnps: list[pd.DataFrame] = []
        self.reports: list[Mapping[str, Any]] = []
        self.timings: dict[str, float] = defaultdict(float)
        self.next_id = 1
        self.statistics = FieldStatistics()

    def measure_statistics(self) -> None:
        """Measure the field's statistics over all blocks (before :meth:`tiles`)."""
        start = time.perf_counter()
        request = statistics_request(self.prepared)
        n_z = int(self.regions.shape_zcyx[0])
        self.statistics = measure_in_blocks(request, self.plan, n_z, self.read_channels)
        self.timings["field_statistics"] += time.perf_counter() - start
        logger.debug("field statistics of %s: %s", self.image_id, self.statistics)

    def read_channels(self, block: Block) -> tuple[np.ndarray, np.ndarray]:
        """The block's cell and particle channels (``ZYX`` float32) over its read window."""
        stack = self.regions.stack(self.regions.read(*block.read), self.image_id)
        roles = self.prepared.params_of("select_channels")
        return select_channel(stack, "cell", roles), select_channel(stack, "pnp", roles)

    def tiles(self) -> Iterator[np.ndarray]:
        """Label tiles of the field in row-major order, analysing blocks as they are needed."""
        for row in range(self.plan.n_rows):
            for block in self.plan.row(row):
                self._analyse(block)
            next_read = (row + 1) * self.plan.core_px - self.plan.halo_px
            final = self.plan.shape_yx[0] if row == self.plan.n_rows - 1 else next_read
            for first_row, rows in self.band.release(final):
                self.overview.add_rows(first_row, rows)
                yield from tiles_of_rows(rows, LABEL_TILE_PX)

    def _analyse(self, block: Block) -> None:
        start = time.perf_counter()
        data = self.regions.read(*block.read)
        self.timings["read"] += time.perf_counter() - start
        stack = self.regions.stack(data, self.image_id)
        run = self.prepared.run({"stack": stack, FIELD_STATISTICS: self.statistics})
        for name, seconds in run.timings_s.items():
            self.timings[name] += seconds
        values = run.values
        kept = keep_block_cells(
            block,
            self.plan,
            np.asarray(values["cell_labels"]),
            values["cells_table"],
            values["pnps_table"],
            self.band.window(*block.read),
            self.next_id,
        )
        self.next_id += len(kept.cells)
        self.band.paint(*block.read, kept.labels)
        self.cells.append(kept.cells)
        self.pnps.append(kept.pnps)
        self.reports.append(dict(values.get("qc") or {}))
        if values.get("cell_image") is not None:
            self.overview.add_image(block, np.asarray(values["cell_image"]))
        logger.debug(
            "block %d/%d of %s: %d cells kept",
            block.index + 1,
            len(self.plan),
            self.image_id,
            len(kept.cells),
        )

    def values(self, labels_tiff: bytes) -> dict[str, Any]:
        """The field's values: tables, ``qc``, QC picture and the streamed ``labels.tif``."""
        cells = _concat(self.cells, CELL_COLUMNS)
        pnps = _concat(self.pnps, PNP_COLUMNS)
        qc_png = self.overview.picture(cells, pnps, self.type_names, self.image_id)
        qc = merge_qc(self.reports)
        if qc:
            qc["blocks"] |= {"core_px": self.plan.core_px, "halo_px": self.plan.halo_px}
        return {
            "cells_table": cells,
            "pnps_table": pnps,
            "qc": qc,
            "qc_png": qc_png,
            "labels_tiff": labels_tiff,
        }


def _concat(tables: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    tables = [t for t in tables if len(t)]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(columns))


def check_block_pipeline(prepared: PreparedPipeline, source: str) -> None:
    """Refuse a pipeline that cannot be stitched from blocks (it lacks :data:`BLOCK_OUTPUTS`).

    Raises
    ------
    StepError
        Naming the file, the pipeline and what it lacks.
    """
    provided = {name for bound in prepared.pipeline.steps for name in bound.spec.provides}
    missing = [name for name in BLOCK_OUTPUTS if name not in provided]
    if missing:
        raise StepError(
            f"{source} is larger than the working-set budget and is analysed in blocks, but "
            f"pipeline {prepared.pipeline.name!r} provides no {missing} to stitch blocks from; "
            "raise OVERNIGHT_MAX_WORKING_SET_GB (and the worker's memory) to analyse it whole"
        )


@dataclass(frozen=True)
class BlockedField:
    """A field opened by region, with the blocks it is analysed in."""

    regions: FieldRegions
    plan: BlockPlan


@contextmanager
def opened_in_blocks(
    path: Path, limits: ReadLimits, timepoint: int | None = None
) -> Iterator[BlockedField | None]:
    """``path`` opened by region when its whole-field estimate exceeds the budget; else None.

    A file with several timepoints is one field per timepoint (``timepoint``, as the image's
    key names it): each is estimated, read and analysed alone.

    The estimate is :func:`~overnight.imaging.limits.working_set_bytes` of the declared shape,
    before any pixel is decoded; the blocks are the largest that fit the budget
    (:func:`~overnight.imaging.limits.check_streamable`, which refuses a stack whose smallest
    block does not fit). Files that cannot be read by region (vendor formats) give None:
    the caller's whole-field check refuses them when they are too large.

    Raises
    ------
    InvalidImageError
        A field too large even for the smallest block.
    """
    with ExitStack() as opened:
        regions: FieldRegions | None = None
        if can_read_regions(path):
            try:
                regions = opened.enter_context(
                    open_regions(path, limits=limits, timepoint=timepoint)
                )
            except InvalidImageError:  # the whole-field reader reports it with its context
                regions = None
        blocked = None if regions is None else blocked_field(regions, path.name, limits)
        if blocked is None:
            opened.close()
        yield blocked


def blocked_field(regions: FieldRegions, name: str, limits: ReadLimits) -> BlockedField | None:
    """``regions`` (any, an OME-Zarr of a bucket too) with :func:`opened_in_blocks`'s blocks.

    None when its whole-field estimate fits the budget; ``name`` names it in messages. Raises
    :class:`InvalidImageError` for a field too large even for the smallest block.
    """
    if not needs_blocks(regions.shape_zcyx, regions.dtype, limits):
        return None
    core_px = check_streamable(name, regions.shape_zcyx, regions.dtype, limits)
    return BlockedField(regions, plan_blocks(regions.shape_zcyx[2:], core_px, limits.block_halo_px))


def run_in_blocks(
    prepared: PreparedPipeline, field: BlockedField, image_id: str, stage: str | None = None
) -> PipelineRun:
    """Run the pipeline (all of it: ``stage`` must be None) on every block and stitch the field.

    Returns
    -------
    PipelineRun
        ``values``: ``cells_table`` and ``pnps_table`` (field ids and coordinates), ``qc``
        (see :func:`merge_qc`), ``qc_png`` (a downsampled overview), ``labels_tiff`` (the
        OME-TIFF bytes of the stitched uint32 labels) and ``blocked_field`` (``field``, to
        write ``image.ome.zarr`` from while it is open: :func:`ome_zarr_in_blocks`);
        ``timings_s``: each step's time summed over blocks, and ``read_blocks``, the time
        spent reading windows.

    Raises
    ------
    InvalidImageError
        When a ``stage`` is asked for: the queue's two-stage workers cannot split a field
        analysed in blocks.
    """
    regions, plan = field.regions, field.plan
    if stage is not None:
        raise InvalidImageError(
            regions.source,
            f"is larger than the working-set budget and is analysed in {len(plan)} blocks, "
            "which the queue's two-stage workers cannot split; analyse it with `overnight run` "
            "or the Kubernetes dispatcher (`overnight worker run-image`), or raise "
            "OVERNIGHT_MAX_WORKING_SET_GB together with the workers' memory",
        )
    check_block_pipeline(prepared, regions.source)
    stitching = _BlockStitching(prepared, regions, image_id, plan)
    stitching.measure_statistics()
    identity = repr(
        (image_id, regions.source, regions.shape_zcyx, plan, prepared.pipeline.describe())
    )
    with tempfile.TemporaryDirectory(prefix="overnight-blocks-") as folder:
        path = Path(folder) / "labels.tif"
        write_labels_tiff_tiles(
            path,
            stitching.tiles(),
            plan.shape_yx,
            LABEL_TILE_PX,
            regions.calibration.pixel_size_um,
            hashlib.sha256(identity.encode()).digest(),
        )
        labels_tiff = path.read_bytes()
    timings = dict(stitching.timings)
    read_s = timings.pop("read", 0.0)
    values = stitching.values(labels_tiff) | {"blocked_field": field}
    return PipelineRun(values=values, timings_s={"read_blocks": read_s, **timings})


@contextmanager
def ome_zarr_in_blocks(
    field: BlockedField, labels_tiff: bytes, image_id: str, beside: Mapping[str, bytes]
) -> Iterator[Mapping[str, bytes]]:
    """``beside`` and the ``image.ome.zarr/...`` files of a field analysed in blocks.

    The mapping is valid inside the block.

    The input is read again by region and the labels from the stitched ``labels_tiff``, one
    block-sized window at a time, into a temporary folder on disk
    (:func:`~overnight.results.ome_zarr_blocks.write_ome_zarr_by_window`); the files are the
    whole-field writer's for the same image and labels. The mapping reads each file from disk
    when asked (``publish_result`` publishes them one by one), so peak memory stays about a
    block's, not the field's.
    """
    regions, plan = field.regions, field.plan
    calibration = regions.calibration
    with tempfile.TemporaryDirectory(prefix="overnight-ome-zarr-") as folder:
        root = Path(folder) / OME_ZARR_NAME
        write_ome_zarr_by_window(
            root,
            regions.read,
            tiff_window_reader(labels_tiff),
            regions.shape_zcyx,
            regions.dtype,
            name=image_id,
            pixel_size_um=calibration.pixel_size_um,
            z_step_um=calibration.z_step_um,
            channel_names=calibration.channel_names,
            window_px=plan.core_px + 2 * plan.halo_px,
        )
        yield FolderFiles(root, OME_ZARR_NAME, beside)
