"""``overnight ingest`` and ``overnight worker``: the services as commands.

``ingest serve`` runs the REST API (uvicorn), ``ingest watch`` the folder/bucket watcher;
``worker segmentation`` and ``worker pnp`` drain their queues; ``worker run-image`` analyses
one image without a queue (one Kubernetes pod per image) and ``worker drain`` takes up to K
images off the queues and exits. ``overnight stack`` (:mod:`overnight.cli.stack`) runs all of
it as local processes.

The command line is the top composition root: it reaches the service packages only through
their module names (:func:`~overnight.cli.main.service`), never by a static import, so the
library does not depend on the services.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

import click

from overnight.cli.main import service
from overnight.config import CommonSettings, load_settings
from overnight.dispatch.jobspec import BAD_IMAGE_EXIT_CODE
from overnight.errors import ObjectNotFoundError, OvernightError
from overnight.logs import configure_logging

if TYPE_CHECKING:
    from overnight.jobs.state import DatasetRecord
    from overnight.storage import ObjectStore

logger = logging.getLogger(__name__)

#: The service modules the commands run (loaded when a command runs).
INGEST_APP = "overnight_ingest.app"
INGEST_CONFIG = "overnight_ingest.core.config"
INGEST_CRON = "overnight_ingest.cron"
INGEST_WATCHER = "overnight_ingest.watcher"
SEGMENTATION_WORKER = "overnight_segmentation.worker"
PNP_WORKER = "overnight_pnp.worker"

S = TypeVar("S", bound=CommonSettings)


def _settings(ctx: click.Context, cls: type[S], **overrides: object) -> S:
    config_file = ctx.find_root().obj.get("config_file") if ctx.find_root().obj else None
    try:
        settings = load_settings(cls, config_file, **overrides)
    except OvernightError as err:
        raise click.ClickException(str(err)) from err
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _stop_event() -> threading.Event:
    """An event set by SIGTERM or Ctrl-C."""
    stop = threading.Event()

    def _handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    return stop


@click.group()
def ingest() -> None:
    """The ingest service: REST API and watcher."""


@ingest.command()
@click.option(
    "--host", default=None, help="Address to listen on (OVERNIGHT_HOST, default 127.0.0.1)."
)
@click.option("--port", type=int, default=None, help="Port (OVERNIGHT_PORT, default 8000).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the REST API (OpenAPI docs at /docs)."""
    import uvicorn

    settings = _settings(ctx, service(INGEST_CONFIG).IngestSettings, host=host, port=port)
    try:
        app = service(INGEST_APP).create_app(settings)
    except OvernightError as err:
        raise click.ClickException(str(err)) from err
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,
        access_log=settings.log_level == "DEBUG",
    )


@ingest.command()
@click.option("--once", is_flag=True, help="Scan once (enqueue what is stable) and exit.")
@click.pass_context
def watch(ctx: click.Context, once: bool) -> None:
    """Watch OVERNIGHT_WATCH_SOURCES and enqueue each new image once it is completely written."""
    from overnight.jobs.connection import check_redis, connect
    from overnight.jobs.submit import Submitter
    from overnight.storage import open_store

    CronSchedule = service(INGEST_CRON).CronSchedule
    Watcher, run_watcher = service(INGEST_WATCHER).Watcher, service(INGEST_WATCHER).run_watcher
    settings = _settings(ctx, service(INGEST_CONFIG).IngestSettings)
    try:
        if not settings.watched_sources():
            raise click.ClickException("nothing to watch: set OVERNIGHT_WATCH_SOURCES")
        schedule = CronSchedule.parse(settings.watch_schedule) if settings.watch_schedule else None
        redis = connect(settings.redis_url)
        check_redis(redis)
        submitter = Submitter(redis, open_store(settings.storage_url, settings), settings)
        watcher = Watcher(
            submitter,
            settings.watched_sources(),
            settings.watched_pipeline(),
            settings.watch_stable_s,
        )
        if once:
            report = watcher.scan()
            click.echo(
                f"enqueued {len(report.enqueued)}, settling {report.waiting}, known {report.known}"
            )
            return
        logger.info(
            "watching %s every %.0f s%s",
            ", ".join(settings.watched_sources()),
            settings.watch_interval_s,
            f" and at '{settings.watch_schedule}'" if schedule else "",
        )
        run_watcher(
            watcher,
            settings.watch_interval_s,
            schedule,
            _stop_event(),
            heartbeat_file=settings.watch_heartbeat_file,
        )
    except OvernightError as err:
        raise click.ClickException(str(err)) from err


@click.group()
def worker() -> None:
    """Queue workers, and one-off analysis of images for Kubernetes pods."""


@worker.command()
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@click.pass_context
def segmentation(ctx: click.Context, burst: bool) -> None:
    """Segment and classify cells (queue overnight-segmentation)."""
    from overnight.jobs.settings import JobSettings

    settings = _settings(ctx, JobSettings)
    try:
        service(SEGMENTATION_WORKER).main(settings, burst=burst)
    except OvernightError as err:
        raise click.ClickException(str(err)) from err


@worker.command()
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@click.pass_context
def pnp(ctx: click.Context, burst: bool) -> None:
    """Detect and count PNPs, publish the results (queue overnight-pnp)."""
    from overnight.jobs.settings import JobSettings

    settings = _settings(ctx, JobSettings)
    try:
        service(PNP_WORKER).main(settings, burst=burst)
    except OvernightError as err:
        raise click.ClickException(str(err)) from err


@worker.command("all")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.pass_context
def all_stages(ctx: click.Context, burst: bool) -> None:
    """Both stages in one process, from both queues (a small machine, or one CPU per worker)."""
    from overnight.jobs.settings import JobSettings
    from overnight.jobs.worker import run_worker

    settings = _settings(ctx, JobSettings)
    try:
        run_worker(settings, "all", burst=burst)
    except OvernightError as err:
        raise click.ClickException(str(err)) from err


@worker.command("run-image")
@click.option("--dataset-id", required=True, help="Dataset the image belongs to.")
@click.option("--image-key", required=True, help="Key of the image in the dataset's source.")
@click.pass_context
def run_image_command(ctx: click.Context, dataset_id: str, image_key: str) -> None:
    """Analyse one image (both stages, in this process) and publish its result.

    Exit status: 0 done (or already published), 3 the image cannot be analysed, 1 any other
    error (worth retrying).
    """
    from overnight.jobs.settings import JobSettings
    from overnight.jobs.stages import StageContext
    from overnight.jobs.submit import Submitter
    from overnight.jobs.tasks import run_image
    from overnight.pipeline.outcome import FailureKind, sort_error

    settings = _settings(ctx, JobSettings)
    try:
        context = StageContext(settings)
        record = _dataset_record(context.store, dataset_id, settings.pipeline)
        job = Submitter(context.redis, context.store, settings).image_job(record, image_key)
        run_image(context, job)
    except Exception as err:  # sorted as every runner sorts them: the exit status says which
        failure = sort_error(err)
        if failure.kind is FailureKind.BAD_IMAGE:
            click.echo(f"bad image {image_key}: {failure.reason}", err=True)
            sys.exit(BAD_IMAGE_EXIT_CODE)
        failure.log(logger, err, {"image_key": image_key, "dataset_id": dataset_id})
        click.echo(f"error: {failure.reason}", err=True)
        sys.exit(1)
    click.echo(f"done: {job.result_prefix}")


def _dataset_record(store: ObjectStore, dataset_id: str, pipeline: str) -> DatasetRecord:
    """The dataset's record from ``results/<id>/dataset.json``; an upload dataset when absent."""
    from overnight.jobs.state import DatasetRecord
    from overnight.jobs.submit import UPLOAD_SOURCE
    from overnight.results.layout import DatasetResults
    from overnight.storage import validate_id

    validate_id(dataset_id)
    try:
        body = store.read_bytes(DatasetResults.of_dataset(store, dataset_id).dataset_key)
    except ObjectNotFoundError:
        return DatasetRecord(id=dataset_id, source=UPLOAD_SOURCE, pipeline=pipeline)
    return DatasetRecord.model_validate(json.loads(body))


@worker.command()
@click.option(
    "--max-images", type=int, required=True, help="Images to take off the queues before exiting."
)
@click.pass_context
def drain(ctx: click.Context, max_images: int) -> None:
    """Work both queues until K images went through both stages or the queues are empty."""
    from overnight.jobs.settings import JobSettings
    from overnight.jobs.worker import run_worker

    settings = _settings(ctx, JobSettings)
    try:
        run_worker(settings, "all", burst=True, max_jobs=2 * max_images)
    except OvernightError as err:
        raise click.ClickException(str(err)) from err
