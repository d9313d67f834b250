"""``overnight run``: analyse a folder of images on this machine, no servers needed."""

from __future__ import annotations

import math
from pathlib import Path

import click
from pydantic import Field
from tqdm import tqdm

from overnight.config import CommonSettings, load_settings
from overnight.errors import OvernightError
from overnight.imaging import require_scan
from overnight.imaging.limits import DEFAULT_MAX_WORKING_SET_GB, ReadLimits
from overnight.imaging.reader import part_keys
from overnight.logs import configure_logging
from overnight.pipeline.batch import BatchOptions, ImageOutcome, default_workers, run_batch
from overnight.pipeline.definition import is_series_pipeline
from overnight.results.ome_zarr import OUTPUT_FORMATS, OutputFormat
from overnight.storage import open_store
from overnight.storage.publish import write_dataset_file


class RunSettings(CommonSettings):
    """Settings of the embedded run (``overnight run``)."""

    config_section = "run"

    pipeline: str = Field(
        "cytometry", description="Pipeline of `overnight run`: a built-in name or a YAML file."
    )
    workers: int = Field(0, description="Worker processes of `overnight run` (0 = one per core).")
    threads_per_worker: int = Field(
        0,
        ge=0,
        description="Inference threads (ONNX Runtime or TensorFlow) of each worker process "
        "(0 = the cores divided among the workers, at least 1: one each with one worker per core).",
    )
    max_working_set_gb: float = Field(
        DEFAULT_MAX_WORKING_SET_GB,
        gt=0,
        description="Most memory one image's analysis may need (GiB), estimated from its "
        "declared shape before reading; a larger image fails at once with the reason.",
    )
    channels: dict[str, int] | None = Field(
        None, description='Channel roles, e.g. {"cell": 0, "pnp": 1}; overrides the pipeline file.'
    )


@click.command()
@click.argument("input_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out", "out", required=True, help="Output folder (or s3:// URL); one subfolder per image."
)
@click.option(
    "--pipeline", default=None, help="Built-in pipeline name or a YAML file [default: cytometry]."
)
@click.option("--workers", type=int, default=None, help="Worker processes [default: one per core].")
@click.option("--force", is_flag=True, help="Re-analyse images whose result is already complete.")
@click.option("--quiet", is_flag=True, help="No progress bar or table, only errors.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(OUTPUT_FORMATS),
    default="tiff",
    show_default=True,
    help="ome-zarr also writes OUT/<image_id>/image.ome.zarr/: the input (multiscale, µm) "
    "with the cell labels as its NGFF labels, for napari-ome-zarr and other NGFF viewers.",
)
@click.pass_context
def run(
    ctx: click.Context,
    input_dir: Path,
    out: str,
    pipeline: str | None,
    workers: int | None,
    force: bool,
    quiet: bool,
    output_format: OutputFormat,
) -> None:
    """Analyse every TIFF in INPUT_DIR and write results to --out.

    Per image: OUT/<image_id>/labels.tif, cells.csv, pnps.csv, qc.png, result.json and a
    manifest.json written last; for the dataset: OUT/summary.csv (and failures.json).
    Images whose result is complete are skipped unless --force. Exit code 0 only when
    every image succeeded; otherwise each failed file is listed with the reason.
    """
    settings = load_settings(
        RunSettings,
        ctx.obj.get("config_file") if ctx.obj else None,
        pipeline=pipeline,
        workers=workers,
    )
    configure_logging("WARNING" if quiet else settings.log_level, settings.log_format)
    if is_series_pipeline(settings.pipeline):
        from overnight.cli.pk_run import run as pk_run

        click.echo(f"{settings.pipeline} analyses time series: running `overnight pk run`")
        ctx.invoke(pk_run, input_path=input_dir, out=out, force=force)
        return
    try:
        scan = require_scan(input_dir)
        paths = scan.images
        _check_writable(out)
    except OvernightError as err:
        raise click.ClickException(str(err)) from err
    n_workers = settings.workers or default_workers()
    overrides = {"select_channels": {"channels": settings.channels}} if settings.channels else {}
    options = BatchOptions(
        pipeline=settings.pipeline,
        out_url=out,
        force=force,
        step_overrides=overrides,
        dataset_dir=input_dir,
        limits=ReadLimits.with_working_set_gb(settings.max_working_set_gb),
        output_format=output_format,
        threads_per_worker=settings.threads_per_worker,
    )
    # one image per scene / timepoint of a multi-part file (run_batch would do it too)
    paths = [Path(k) for p in paths for k in part_keys(str(p), p, limits=options.limits)]
    if not quiet:
        click.echo(
            f"Analysing {len(paths)} images from {input_dir} with {n_workers} worker(s) → {out}"
        )
        for item in scan.ignored:
            click.echo(f"  not analysed: {item.relative}: {item.reason}", err=True)
    with tqdm(total=len(paths), unit="image", disable=quiet, dynamic_ncols=True) as bar:

        def progress(outcome: ImageOutcome) -> None:
            bar.update(1)
            bar.set_postfix_str(f"{outcome.image_id[-24:]} {outcome.status}")

        try:
            outcomes = run_batch(
                paths,
                options,
                workers=max(1, min(n_workers, len(paths))),
                on_outcome=progress,
                ignored=scan.ignored,
            )
        except OvernightError as err:
            raise click.ClickException(str(err)) from err
    if not quiet:
        click.echo(format_outcomes(outcomes))
        click.echo(f"\nResults: {out}  (summary: {out.rstrip('/')}/summary.csv)")
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        click.echo(f"\n{len(failed)} of {len(outcomes)} images failed:", err=True)
        for o in failed:
            click.echo(f"  {o.source}: {o.reason}", err=True)
        ctx.exit(1)


def _check_writable(out: str) -> None:
    """Fail before any work when the output cannot be written."""
    store = open_store(out)
    write_dataset_file(store, ".overnight-write-check", b"ok")
    store.delete(".overnight-write-check")


def format_outcomes(outcomes: list[ImageOutcome], max_rows: int = 40) -> str:
    """A fixed-width table: image, status, cells, PNPs, mean PNPs per cell, seconds."""
    width = min(48, max([len(o.image_id) for o in outcomes] + [8]))
    lines = [f"{'image':<{width}}  {'status':<7} {'cells':>5} {'PNPs':>6} {'PNP/cell':>8} {'s':>6}"]
    for o in outcomes[:max_rows]:
        mean = "" if math.isnan(o.mean_pnp_per_cell) else f"{o.mean_pnp_per_cell:.1f}"
        cells = str(o.n_cells) if o.status == "done" else ""
        pnps = str(o.n_pnps) if o.status == "done" else ""
        secs = f"{o.seconds:.1f}" if o.status == "done" else ""
        lines.append(
            f"{o.image_id[:width]:<{width}}  {o.status:<7} {cells:>5} {pnps:>6} {mean:>8} {secs:>6}"
        )
    if len(outcomes) > max_rows:
        lines.append(f"... and {len(outcomes) - max_rows} more (see summary.csv)")
    done = sum(o.status == "done" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    lines.append(f"{done} done, {skipped} skipped (already complete), {failed} failed")
    return "\n".join(lines)
