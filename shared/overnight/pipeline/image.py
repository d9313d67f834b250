"""One image, one way: read → run the pipeline (whole, or stage by stage) → publish.

:func:`analyse_image` is the use case every runner calls: the embedded batch
(:mod:`overnight.pipeline.batch`), the Kubernetes pod (``overnight worker run-image``) and,
split into its pieces, the queue stages (:mod:`overnight.jobs.tasks`): the segmentation job
calls :func:`opened_image` and :func:`run_steps` with ``stage="segmentation"``; the counting
job calls them again with ``stage="counting"`` and the segmentation's values, then
:func:`publish_image`. The pieces are the function's own, so every runner writes the same
``result.json`` and the same tables.
"""

from __future__ import annotations

import platform
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from overnight import __version__
from overnight.errors import InvalidImageError
from overnight.imaging import IMAGE_EXTENSIONS, ReadLimits, image_id_for, read_info, read_stack
from overnight.imaging.files import is_zarr_folder_name, split_part_key
from overnight.imaging.limits import check_working_set
from overnight.imaging.reader import read_zarr_in_store
from overnight.imaging.regions import zarr_regions
from overnight.imaging.stack import ImageStack
from overnight.imaging.zarr_store import open_zarr_in_store
from overnight.metadata import metadata_for
from overnight.pipeline.block_run import (
    BlockedField,
    blocked_field,
    ome_zarr_in_blocks,
    opened_in_blocks,
    run_in_blocks,
)
from overnight.pipeline.definition import Pipeline
from overnight.pipeline.runner import PipelineRun, PreparedPipeline
from overnight.results.artefacts import result_artefacts
from overnight.results.layout import DatasetResults
from overnight.results.ome_zarr import OutputFormat
from overnight.results.record import ImageResult
from overnight.results.summary import image_summary
from overnight.storage import ObjectStore, publish_result
from overnight.storage.copies import local_copy


@dataclass(frozen=True)
class ImageSource:
    """Where one image of a dataset lies.

    Either a key of the dataset's store (``store`` is the dataset's folder or prefix: its
    sub-folders carry metadata) or, with ``store=None``, a local file ``key`` of the dataset
    folder ``dataset_dir`` (an embedded run; None: the file's own folder). A key may name one
    scene / timepoint of a file (``plate.czi#s01t003``, see ``imaging.files.split_part_key``).
    """

    key: str
    store: ObjectStore | None = None
    dataset_dir: Path | None = None
    #: The image's id when the runner has it (a queue job's payload); None: from ``key``.
    id: str | None = None

    @classmethod
    def file(cls, path: Path, dataset_dir: Path | None = None) -> ImageSource:
        """A local image file of the dataset folder ``dataset_dir``."""
        return cls(key=str(path), dataset_dir=dataset_dir)

    @property
    def file_key(self) -> str:
        """The key (or path) of the file that holds the image, less any part suffix."""
        return split_part_key(self.key)[0]

    @property
    def part(self) -> tuple[int | None, int | None]:
        """``(scene, timepoint)`` the key names; None where the file has one."""
        _, scene, timepoint = split_part_key(self.key)
        return scene, timepoint

    @property
    def image_id(self) -> str:
        """The id of the image: its path in the dataset, encoded (see ``image_id_for``)."""
        if self.id is not None:
            return self.id
        if self.store is not None:
            return image_id_for(self.key)
        path = Path(self.key)
        if self.dataset_dir is not None and path.absolute().is_relative_to(
            self.dataset_dir.absolute()
        ):
            return image_id_for(path.absolute().relative_to(self.dataset_dir.absolute()).as_posix())
        return image_id_for(path.name)


@dataclass(frozen=True)
class ImageFacts:
    """What the record says about the input: metadata, warnings and read time (s)."""

    metadata: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    read_s: float = 0.0


@dataclass(frozen=True)
class LoadedImage:
    """An image read for analysis, with its facts."""

    stack: ImageStack
    facts: ImageFacts
    #: Set when the field is too large to analyse whole: ``stack`` then holds no pixels and
    #: :func:`run_steps` analyses the field block by block (:mod:`overnight.pipeline.block_run`).
    blocks: BlockedField | None = None


@contextmanager
def local_image(source: ImageSource) -> Iterator[tuple[Path, Path]]:
    """``(file, dataset folder)`` of ``source``: a remote object is copied while the block runs."""
    if source.store is None:
        path = Path(source.file_key)
        yield path, source.dataset_dir if source.dataset_dir is not None else path.parent
        return
    with local_copy(source.store, source.file_key) as (path, folder):
        yield path, folder


def image_metadata(path: Path, dataset_dir: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    """Fields and warnings of the image at ``path`` in the dataset folder ``dataset_dir``.

    Every folder from the dataset folder down to the image may carry ``key-value`` fields.
    """
    path, dataset_dir = path.absolute(), dataset_dir.absolute()
    resolved = metadata_for(path, root=dataset_dir.parent)
    return dict(resolved.fields), tuple(resolved.warnings)


@contextmanager
def opened_image(
    source: ImageSource, pipeline: Pipeline, limits: ReadLimits | None = None
) -> Iterator[LoadedImage]:
    """Read the image of ``source`` with its metadata (a local copy is kept while open).

    A field beyond the working-set budget is opened by region instead (``LoadedImage.blocks``):
    a TIFF or OME-Zarr folder as :func:`opened_in_blocks` does, an OME-Zarr in a bucket from the
    store itself (each block fetches only the chunks it overlaps, no local copy).

    Raises
    ------
    InvalidImageError
        The file cannot be analysed (never retried).
    """
    start = time.perf_counter()
    limits = limits or ReadLimits()
    if _is_remote_zarr(source):  # read chunk by chunk from the store, no local copy
        blocked = _remote_zarr_in_blocks(source, limits)
        if blocked is not None:  # larger than the working-set budget: read by region
            metadata, warnings = _store_metadata(source)
            stack = blocked.regions.shape_only_stack(source.image_id)
            facts = ImageFacts(metadata, warnings, time.perf_counter() - start)
            yield LoadedImage(stack, facts, blocked)
            return
        yield _remote_zarr(source, pipeline, limits, start)
        return
    with local_image(source) as (path, dataset_dir):
        metadata, warnings = image_metadata(path, dataset_dir)
        roles = pipeline.channel_roles
        scene, timepoint = source.part
        with opened_in_blocks(path, limits, timepoint) as blocked:
            if blocked is not None:  # larger than the working-set budget: read by region
                stack = blocked.regions.shape_only_stack(source.image_id)
                facts = ImageFacts(metadata, warnings, time.perf_counter() - start)
                yield LoadedImage(stack, facts, blocked)
                return
        declared = _declared_shape(path, limits, timepoint)
        if declared is not None:  # refused before a pixel is decoded
            check_working_set(path.name, *declared, limits)
        stack = read_stack(
            path,
            image_id=source.image_id,
            limits=limits,
            channels_required=len(roles),
            channel_roles=roles,
            scene=scene,
            timepoint=timepoint,
        )
        check_working_set(path.name, stack.shape_zcyx, stack.data.dtype, limits)
        yield LoadedImage(stack, ImageFacts(metadata, warnings, time.perf_counter() - start))


def _is_remote_zarr(source: ImageSource) -> bool:
    """Whether ``source`` is an OME-Zarr folder of a store that is not a local folder."""
    return (
        source.store is not None
        and is_zarr_folder_name(source.file_key.rsplit("/", 1)[-1])
        and source.store.local_path(source.file_key) is None
    )


def _store_metadata(source: ImageSource) -> tuple[dict[str, str], tuple[str, ...]]:
    """Fields and warnings of an image of a store, from its key's folders (nothing copied)."""
    with tempfile.TemporaryDirectory(prefix="overnight-") as folder:  # names only, no copy
        return image_metadata(Path(folder) / source.file_key, Path(folder))


def _remote_zarr_in_blocks(source: ImageSource, limits: ReadLimits) -> BlockedField | None:
    """The remote OME-Zarr of ``source`` opened by region when beyond the budget; else None.

    Only its metadata objects are read here; each block then fetches the chunks its window
    overlaps (:func:`~overnight.imaging.regions.zarr_regions`). Opening errors are left to
    :func:`_remote_zarr`, which reports the same ones.
    """
    assert source.store is not None
    try:
        image = open_zarr_in_store(source.store, source.file_key, limits=limits)
        regions = zarr_regions(image, limits, source.part[1])
    except InvalidImageError:
        return None
    return blocked_field(regions, source.file_key, limits)


def _remote_zarr(
    source: ImageSource, pipeline: Pipeline, limits: ReadLimits, start: float
) -> LoadedImage:
    """An OME-Zarr image of an object store (S3), its metadata from its key's folders."""
    assert source.store is not None
    metadata, warnings = _store_metadata(source)
    stack = read_zarr_in_store(
        source.store,
        source.file_key,
        image_id=source.image_id,
        limits=limits,
        channels_required=len(pipeline.channel_roles),
        channel_roles=pipeline.channel_roles,
        timepoint=source.part[1],
    )
    check_working_set(source.file_key, stack.shape_zcyx, stack.data.dtype, limits)
    return LoadedImage(stack, ImageFacts(metadata, warnings, time.perf_counter() - start))


def _declared_shape(
    path: Path, limits: ReadLimits, timepoint: int | None = None
) -> tuple[tuple[int, int, int, int], np.dtype] | None:
    """A TIFF's declared ZCYX shape (of one timepoint) and pixel type; None for other files.

    Errors are left to :func:`read_stack`, which reports them with their reasons.
    """
    if not path.name.lower().endswith(IMAGE_EXTENSIONS):
        return None
    try:
        info = read_info(path, limits=limits, timepoint=timepoint)
    except Exception:  # read_stack raises the same error with its context
        return None
    return info.shape_zcyx, info.dtype


def run_steps(
    prepared: PreparedPipeline,
    image: LoadedImage,
    stage: str | None = None,
    earlier: PipelineRun | None = None,
) -> PipelineRun:
    """Run the steps of ``stage`` (None: all) on the image, after an ``earlier`` stage's run.

    The timings of ``earlier`` come first in the returned run. A field too large to analyse
    whole (``image.blocks``) runs block by block (``block_run.run_in_blocks``).
    """
    if image.blocks is not None:
        return run_in_blocks(prepared, image.blocks, image.stack.image_id, stage)
    carried = dict(earlier.values) if earlier else {}
    run = prepared.run({**carried, "stack": image.stack}, stage=stage)
    timings = {**(earlier.timings_s if earlier else {}), **run.timings_s}
    return PipelineRun(values=run.values, timings_s=timings)


def image_result(
    prepared: PreparedPipeline, stack: ImageStack, facts: ImageFacts, run: PipelineRun
) -> ImageResult:
    """The ``result.json`` record of one analysed image."""
    z, c, y, x = stack.shape_zcyx
    pipeline = prepared.pipeline
    return ImageResult(
        image_id=stack.image_id,
        source=stack.source,
        shape_zcyx=(z, c, y, x),
        pixel_size_um=stack.pixel_size_um,
        z_step_um=stack.z_step_um,
        metadata=dict(facts.metadata),
        pipeline=pipeline.describe(),
        versions={
            "overnight": __version__,
            "python": platform.python_version(),
            **prepared.versions(),
        },
        timings_s={
            "read": round(facts.read_s, 4),
            **{k: round(v, 4) for k, v in run.timings_s.items()},
        },
        warnings=list(facts.warnings),
        summary=image_summary(
            run.values["cells_table"], run.values["pnps_table"], pipeline.cell_type_names
        ),
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        qc=dict(run.values.get("qc") or {}),
        acquisition=stack.acquisition_fields(),
    )


def publish_image(
    results: DatasetResults,
    prepared: PreparedPipeline,
    stack: ImageStack,
    facts: ImageFacts,
    run: PipelineRun,
    *,
    replace: bool = False,
    output_format: OutputFormat = "tiff",
) -> ImageResult:
    """Publish the image's files under ``<dataset prefix>/<image_id>/`` (manifest last).

    ``output_format="ome-zarr"`` adds ``image.ome.zarr/``: the input and its cell labels. A
    field analysed in blocks (``run.values["blocked_field"]``, publish while it is open) has
    neither in memory: its OME-Zarr is written window by window to a temporary folder and
    published from there file by file (:func:`~overnight.pipeline.block_run.ome_zarr_in_blocks`).
    """
    result = image_result(prepared, stack, facts, run)
    blocked: BlockedField | None = run.values.get("blocked_field")
    with ExitStack() as opened:
        artefacts: Mapping[str, bytes]
        if blocked is not None and output_format == "ome-zarr":
            tiff_files = result_artefacts(run.values, result)
            labels_tiff = run.values["labels_tiff"]
            artefacts = opened.enter_context(
                ome_zarr_in_blocks(blocked, labels_tiff, stack.image_id, tiff_files)
            )
        else:
            artefacts = result_artefacts(
                run.values,
                result,
                output_format=output_format,
                image_zcyx=stack.data,
                channel_names=stack.channel_names,
            )
        publish_result(
            results.store,
            results.image_prefix(stack.image_id),
            artefacts,
            result.manifest_info(),
            replace=replace,
        )
    return result


def analyse_image(
    source: ImageSource,
    prepared: PreparedPipeline,
    results: DatasetResults,
    *,
    force: bool = False,
    verify: bool = False,
    limits: ReadLimits | None = None,
    output_format: OutputFormat = "tiff",
) -> ImageResult | None:
    """Analyse one image and publish its result; None if it was complete already (no ``force``).

    A published result counts as complete when its manifest is valid (``verify``: and every
    file's checksum matches).

    Raises
    ------
    InvalidImageError
        The file cannot be analysed. Storage, model and step failures raise other
        :class:`~overnight.errors.OvernightError` subclasses
        (see :func:`overnight.pipeline.outcome.sort_error`).
    """
    if not force and results.is_complete(source.image_id, check_content=verify):
        return None
    with opened_image(source, prepared.pipeline, limits) as image:
        run = run_steps(prepared, image)
        return publish_image(
            results,
            prepared,
            image.stack,
            image.facts,
            run,
            replace=force,
            output_format=output_format,
        )
