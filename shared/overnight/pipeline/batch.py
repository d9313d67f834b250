"""The embedded run: analyse a folder of images with in-process workers, no servers.

Each image goes through :func:`~overnight.pipeline.image.analyse_image`, as in every other
runner; a bad image becomes a failure record and never stops the others. Results already
complete are skipped (idempotent). The dataset is finished with
:func:`~overnight.results.dataset.finish_dataset`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from overnight.imaging import IgnoredFile, ReadLimits
from overnight.imaging.reader import part_keys
from overnight.models.threads import configure_threads, threads_for
from overnight.pipeline.definition import Pipeline, load_pipeline
from overnight.pipeline.image import ImageSource, analyse_image
from overnight.pipeline.outcome import ImageOutcome, Status, sort_error
from overnight.pipeline.runner import PreparedPipeline
from overnight.results.dataset import finish_dataset
from overnight.results.layout import DatasetResults
from overnight.results.ome_zarr import OutputFormat
from overnight.storage import open_store

logger = logging.getLogger(__name__)

__all__ = ["BatchOptions", "ImageAnalyser", "ImageOutcome", "Status", "run_batch"]


@dataclass(frozen=True)
class BatchOptions:
    """How to run a batch: which pipeline, where results go, whether to redo complete ones.

    ``dataset_dir`` is the folder the images were found in: every folder from it down to an
    image may carry ``key-value`` metadata (None: only each image's own folder).
    """

    pipeline: str = "cytometry"
    out_url: str = "overnight-results"
    force: bool = False
    limits: ReadLimits = field(default_factory=ReadLimits)
    step_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    dataset_dir: Path | None = None
    #: ``tiff`` or ``ome-zarr`` (adds ``image.ome.zarr/`` to every result).
    output_format: OutputFormat = "tiff"
    #: TensorFlow threads of each worker process; 0: the cores shared out among the workers
    #: (:func:`~overnight.models.threads.threads_for`).
    threads_per_worker: int = 0


class ImageAnalyser:
    """Analyses images one at a time with :func:`analyse_image`; build once per process."""

    def __init__(self, options: BatchOptions, pipeline: Pipeline | None = None) -> None:
        self.options = options
        self.pipeline = pipeline or load_pipeline(options.pipeline, options.step_overrides)
        self.prepared = PreparedPipeline(self.pipeline)
        self.results = DatasetResults(open_store(options.out_url))

    def analyse(self, path: Path) -> ImageOutcome:
        """Analyse the image at ``path`` and publish its result under ``<image_id>/``."""
        source = ImageSource.file(path, self.options.dataset_dir)
        image_id = source.image_id
        start = time.perf_counter()
        try:
            result = analyse_image(
                source,
                self.prepared,
                self.results,
                force=self.options.force,
                limits=self.options.limits,
                output_format=self.options.output_format,
            )
        except Exception as err:  # sorted once; a bug on one image must not lose the others
            failure = sort_error(err)
            failure.log(logger, err, {"image_id": image_id})
            return ImageOutcome(image_id, str(path), "failed", reason=failure.reason)
        if result is None:
            return ImageOutcome(image_id, str(path), "skipped")
        summary = result.summary
        return ImageOutcome(
            image_id,
            str(path),
            "done",
            n_cells=summary["n_cells"],
            n_pnps=summary["n_pnps"],
            mean_pnp_per_cell=summary["pnp_per_cell_mean"],
            seconds=time.perf_counter() - start,
            bytes_read=Path(source.file_key).stat().st_size,
            step_timings_s=dict(result.timings_s),
        )


# One analyser per worker process, built by the pool initializer so models load once.
_worker_analyser: ImageAnalyser | None = None


def _init_worker(options: BatchOptions, log_level: int, threads: int) -> None:
    global _worker_analyser
    logging.getLogger().setLevel(log_level)
    configure_threads(threads)  # before the models load
    _worker_analyser = ImageAnalyser(options)


def _analyse_in_worker(path: Path) -> ImageOutcome:
    assert _worker_analyser is not None, "worker process was not initialised"
    return _worker_analyser.analyse(path)


def run_batch(
    paths: Sequence[Path],
    options: BatchOptions,
    workers: int = 1,
    on_outcome: Callable[[ImageOutcome], None] | None = None,
    ignored: Sequence[IgnoredFile] = (),
) -> list[ImageOutcome]:
    """Analyse ``paths`` with ``workers`` processes (1 = this process); outcomes in input order.

    ``ignored`` are the files found that cannot be analysed (see
    :func:`~overnight.imaging.scan_folder`): each becomes a failed outcome with its reason,
    after the others. Writes ``summary.csv`` over every complete result in the output, and
    ``failures.json`` for this run's failures. A file with several scenes or timepoints is
    one image per part (``plate.czi#s01t003``, id ``plate~s01~t003``).
    """
    load_pipeline(
        options.pipeline, options.step_overrides
    )  # fail fast on a bad pipeline, before any worker starts
    paths = [
        Path(key) for path in paths for key in part_keys(str(path), path, limits=options.limits)
    ]
    outcomes: dict[Path, ImageOutcome] = {}
    if workers <= 1:
        if options.threads_per_worker:
            configure_threads(options.threads_per_worker)
        analyser = ImageAnalyser(options)
        for path in paths:
            outcomes[path] = analyser.analyse(path)
            if on_outcome:
                on_outcome(outcomes[path])
    else:

        def record(path: Path, outcome: ImageOutcome) -> None:
            outcomes[path] = outcome
            if on_outcome:
                on_outcome(outcome)

        suspects = _run_pool(list(paths), options, workers, record)
        _run_isolated(suspects, options, record)
    ordered = [outcomes[p] for p in paths]
    root = options.dataset_dir or Path(".")
    ordered += [
        ImageOutcome(f.image_id, str(root / f.relative), "failed", reason=f.reason) for f in ignored
    ]
    failures = [asdict(o) for o in ordered if o.status == "failed"]
    finish_dataset(DatasetResults(open_store(options.out_url)), failures)
    return ordered


#: Worker deaths an image may cause in the embedded run before it fails: the one in the
#: shared pool (it and its neighbours are suspects) and one alone in a pool of its own.
MAX_WORKER_DEATHS = 2


def _pool(options: BatchOptions, workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        initializer=_init_worker,
        initargs=(
            options,
            logging.getLogger().level,
            threads_for(workers, options.threads_per_worker),
        ),
    )


def _run_pool(
    paths: list[Path],
    options: BatchOptions,
    workers: int,
    record: Callable[[Path, ImageOutcome], None],
) -> list[Path]:
    """Analyse ``paths`` in a pool, one image per worker at a time; return the suspects.

    When a worker process dies (killed for memory, say) the pool breaks: the images being
    analysed then are suspects, returned for :func:`_run_isolated`; the images not started
    yet go on in a fresh pool, so one poison image never fails the others.
    """
    queue = list(reversed(paths))
    suspects: list[Path] = []
    while queue:
        in_flight: dict[Future[ImageOutcome], Path] = {}
        with _pool(options, workers) as pool:
            try:
                while queue or in_flight:
                    while queue and len(in_flight) < workers:
                        path = queue.pop()
                        in_flight[pool.submit(_analyse_in_worker, path)] = path
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        outcome = future.result()  # BrokenProcessPool: a worker died
                        record(in_flight.pop(future), outcome)
            except BrokenProcessPool:
                logger.warning(
                    "a worker process died analysing one of %s; each runs again alone",
                    ", ".join(p.name for p in in_flight.values()),
                )
                suspects += in_flight.values()
    return suspects


def _run_isolated(
    paths: list[Path], options: BatchOptions, record: Callable[[Path, ImageOutcome], None]
) -> None:
    """Analyse each suspect alone, in a one-worker pool: a death now is its own."""
    pending = list(reversed(paths))
    deaths = dict.fromkeys(paths, 1)
    while pending:
        with _pool(options, 1) as pool:
            try:
                while pending:
                    path = pending[-1]
                    record(path, pool.submit(_analyse_in_worker, path).result())
                    pending.pop()
            except BrokenProcessPool:
                path = pending[-1]
                deaths[path] += 1
                if deaths[path] >= MAX_WORKER_DEATHS:
                    pending.pop()
                    record(
                        path,
                        ImageOutcome(
                            ImageSource.file(path, options.dataset_dir).image_id,
                            str(path),
                            "failed",
                            reason=f"worker died {deaths[path]} times (memory limit?): the "
                            "image needs more memory than a worker has; lower "
                            "OVERNIGHT_MAX_WORKING_SET_GB or run fewer --workers",
                        ),
                    )


def default_workers() -> int:
    """One worker per available core."""
    return max(1, len(os.sched_getaffinity(0)))
