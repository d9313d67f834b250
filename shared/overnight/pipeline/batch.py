"""The embedded run: analyse a folder of images with in-process workers, no servers.

Each image is read, analysed and published on its own; a bad image becomes a failure
record and never stops the others. Results already complete are skipped (idempotent).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from overnight.errors import InvalidImageError, OvernightError
from overnight.imaging import ReadLimits, image_id_from_name, read_stack
from overnight.metadata import metadata_for
from overnight.pipeline.definition import Pipeline, load_pipeline
from overnight.pipeline.runner import PreparedPipeline
from overnight.results.artefacts import manifest_info, result_artefacts, result_record
from overnight.results.summary import summary_table
from overnight.storage import ObjectStore, is_complete, open_store, publish_result, read_manifest
from overnight.storage.publish import write_dataset_file

logger = logging.getLogger(__name__)

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class ImageOutcome:
    """What happened to one image: status, the reason of a failure, counts and timings."""

    image_id: str
    source: str
    status: Status
    reason: str = ""
    n_cells: int = 0
    n_pnps: int = 0
    mean_pnp_per_cell: float = float("nan")
    seconds: float = 0.0
    bytes_read: int = 0
    step_timings_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchOptions:
    """How to run a batch: which pipeline, where results go, whether to redo complete ones."""

    pipeline: str = "cytometry"
    out_url: str = "overnight-results"
    force: bool = False
    limits: ReadLimits = field(default_factory=ReadLimits)
    step_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


class ImageAnalyser:
    """Reads, analyses and publishes images one at a time; build once per process."""

    def __init__(self, options: BatchOptions, pipeline: Pipeline | None = None) -> None:
        self.options = options
        self.pipeline = pipeline or load_pipeline(options.pipeline, options.step_overrides)
        self.prepared = PreparedPipeline(self.pipeline)
        self.store: ObjectStore = open_store(options.out_url)
        self.type_names = self.pipeline.cell_type_names
        self.channel_roles = self.pipeline.channel_roles

    def analyse(self, path: Path) -> ImageOutcome:
        """Analyse the image at ``path`` and publish its result under ``<image_id>/``."""
        image_id = image_id_from_name(path.name)
        start = time.perf_counter()
        if not self.options.force and is_complete(self.store, image_id, check_content=False):
            return ImageOutcome(image_id, str(path), "skipped")
        try:
            resolved = metadata_for(path)
            metadata, warnings = resolved.fields, list(resolved.warnings)
            stack = read_stack(
                path,
                image_id=image_id,
                limits=self.options.limits,
                channels_required=len(self.channel_roles),
                channel_roles=self.channel_roles,
            )
            read_s = time.perf_counter() - start
            run = self.prepared.run({"stack": stack})
            record = result_record(
                stack,
                run,
                self.pipeline.describe(),
                self.prepared.versions(),
                metadata,
                warnings,
                read_s,
                self.type_names,
            )
            artefacts = result_artefacts(run, record)
            info = manifest_info(record)
            publish_result(self.store, image_id, artefacts, info, replace=self.options.force)
        except InvalidImageError as err:
            logger.warning("image failed: %s", err, extra={"image_id": image_id})
            return ImageOutcome(image_id, str(path), "failed", reason=err.problem)
        except OvernightError as err:
            logger.error("image failed: %s", err, extra={"image_id": image_id})
            return ImageOutcome(image_id, str(path), "failed", reason=str(err))
        except Exception as err:  # a bug on one image must not lose the others
            logger.exception("unexpected error on %s", path, extra={"image_id": image_id})
            return ImageOutcome(
                image_id, str(path), "failed", reason=f"internal error: {type(err).__name__}: {err}"
            )
        summary = record["summary"]
        return ImageOutcome(
            image_id,
            str(path),
            "done",
            n_cells=summary["n_cells"],
            n_pnps=summary["n_pnps"],
            mean_pnp_per_cell=summary["pnp_per_cell_mean"],
            seconds=time.perf_counter() - start,
            bytes_read=path.stat().st_size,
            step_timings_s=dict(record["timings_s"]),
        )


# One analyser per worker process, built by the pool initializer so models load once.
_worker_analyser: ImageAnalyser | None = None


def _init_worker(options: BatchOptions, log_level: int) -> None:
    global _worker_analyser
    logging.getLogger().setLevel(log_level)
    _worker_analyser = ImageAnalyser(options)


def _analyse_in_worker(path: Path) -> ImageOutcome:
    assert _worker_analyser is not None, "worker process was not initialised"
    return _worker_analyser.analyse(path)


def run_batch(
    paths: Sequence[Path],
    options: BatchOptions,
    workers: int = 1,
    on_outcome: Callable[[ImageOutcome], None] | None = None,
) -> list[ImageOutcome]:
    """Analyse ``paths`` with ``workers`` processes (1 = this process); outcomes in input order.

    Writes ``summary.csv`` over every complete result in the output, and ``failures.json``
    for this run's failures.
    """
    load_pipeline(
        options.pipeline, options.step_overrides
    )  # fail fast on a bad pipeline, before any worker starts
    outcomes: dict[Path, ImageOutcome] = {}
    if workers <= 1:
        analyser = ImageAnalyser(options)
        for path in paths:
            outcomes[path] = analyser.analyse(path)
            if on_outcome:
                on_outcome(outcomes[path])
    else:
        with ProcessPoolExecutor(
            max_workers=workers,
            initializer=_init_worker,
            initargs=(options, logging.getLogger().level),
        ) as pool:
            futures = {pool.submit(_analyse_in_worker, p): p for p in paths}
            for future in as_completed(futures):
                path = futures[future]
                try:
                    outcomes[path] = future.result()
                except Exception as err:  # the worker process itself died
                    outcomes[path] = ImageOutcome(
                        image_id_from_name(path.name),
                        str(path),
                        "failed",
                        reason=f"worker process failed: {type(err).__name__}: {err}",
                    )
                if on_outcome:
                    on_outcome(outcomes[path])
    ordered = [outcomes[p] for p in paths]
    store = open_store(options.out_url)
    write_summary(store)
    failures = [asdict(o) for o in ordered if o.status == "failed"]
    write_dataset_file(store, "failures.json", json.dumps(failures, indent=2).encode("utf-8"))
    return ordered


def write_summary(store: ObjectStore, prefix: str = "") -> int:
    """Rebuild ``summary.csv`` from the ``result.json`` of every published image; returns rows."""
    rows = [summary_row(store, image_prefix) for image_prefix in published_images(store, prefix)]
    table = summary_table(r for r in rows if r is not None)
    key = f"{prefix}/summary.csv" if prefix else "summary.csv"
    write_dataset_file(store, key, table.to_csv(index=False).encode("utf-8"))
    return len(table)


def published_images(store: ObjectStore, prefix: str = "") -> Iterable[str]:
    """Prefixes ``[<prefix>/]<image_id>`` that hold a manifest (complete results only)."""
    base = f"{prefix}/" if prefix else ""
    for info in store.list(base):
        rest = info.key[len(base) :]
        parts = rest.split("/")
        if len(parts) == 2 and parts[1] == "manifest.json" and not parts[0].startswith("."):
            yield f"{base}{parts[0]}"


def summary_row(store: ObjectStore, image_prefix: str) -> dict[str, Any] | None:
    """One ``summary.csv`` row from a published result (None if it is not complete)."""
    if read_manifest(store, image_prefix) is None:
        return None
    record = json.loads(store.read_bytes(f"{image_prefix}/result.json"))
    return {"image_id": record["image_id"], **record.get("metadata", {}), **record["summary"]}


def default_workers() -> int:
    """One worker per available core."""
    return max(1, len(os.sched_getaffinity(0)))
