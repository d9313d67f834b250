"""``overnight dispatch``: the Kubernetes dispatcher and the Job manifests it creates."""

from __future__ import annotations

import importlib
from pathlib import Path

import click
import yaml

from overnight.config import load_settings
from overnight.dispatch.jobspec import build_drain_job, build_job
from overnight.dispatch.settings import DispatchSettings
from overnight.errors import ConfigError, OvernightError

DISPATCHER_MODULE = "overnight_dispatch.dispatcher"


def _settings(ctx: click.Context) -> DispatchSettings:
    config_file: Path | None = (ctx.find_root().obj or {}).get("config_file")
    try:
        return load_settings(DispatchSettings, config_file)
    except ConfigError as err:
        raise click.ClickException(str(err)) from err


@click.group()
def dispatch() -> None:
    """Create one Kubernetes Job per image (the Helm chart's settings.backend: kubernetes)."""


@dispatch.command("run")
@click.pass_context
def run(ctx: click.Context) -> None:
    """Watch the queue and keep up to OVERNIGHT_MAX_ACTIVE_JOBS image Jobs running."""
    try:
        module = importlib.import_module(DISPATCHER_MODULE)
    except ModuleNotFoundError as err:
        if err.name is not None and DISPATCHER_MODULE.startswith(err.name):
            raise click.ClickException(
                f"the dispatcher service ({DISPATCHER_MODULE}) is not installed in this "
                "environment; install overnight with the dispatcher service "
                "(pip install -e .) or use the dispatcher container image"
            ) from err
        raise
    try:
        module.run_dispatcher(_settings(ctx))
    except OvernightError as err:  # unreachable Redis, no kubeconfig, bad settings
        raise click.ClickException(str(err)) from err


@dispatch.command("render-job")
@click.option("--dataset", "dataset_id", required=True, help="Dataset id.")
@click.option(
    "--image",
    "image_key",
    required=True,
    help="Storage key of the image (the batch id in the drain variant).",
)
@click.option("--image-id", default=None, help="Image id (default: the key's file name stem).")
@click.option("--pipeline", default="cytometry", show_default=True, help="Pipeline name.")
@click.option(
    "--model-version",
    "model_versions",
    multiple=True,
    metavar="NAME=VERSION",
    help="Model version recorded on the Job; repeatable.",
)
@click.option(
    "--images-per-pod",
    type=click.IntRange(min=1),
    default=None,
    help="Render the drain variant for K images (default: OVERNIGHT_IMAGES_PER_POD).",
)
@click.pass_context
def render_job(
    ctx: click.Context,
    dataset_id: str,
    image_key: str,
    image_id: str | None,
    pipeline: str,
    model_versions: tuple[str, ...],
    images_per_pod: int | None,
) -> None:
    """Print the batch/v1 Job the dispatcher would create for one image, as YAML."""
    settings = _settings(ctx)
    versions: dict[str, str] = {}
    for item in model_versions:
        name, sep, version = item.partition("=")
        if not sep or not name or not version:
            raise click.BadParameter(f"{item!r} is not NAME=VERSION", param_hint="--model-version")
        versions[name] = version
    template = settings.job_template()
    per_pod = images_per_pod or settings.images_per_pod
    if per_pod > 1:
        job = build_drain_job(template, dataset_id, image_key, pipeline, versions, per_pod)
    else:
        stem = image_id or _image_id(image_key)
        job = build_job(template, dataset_id, image_key, stem, pipeline, versions)
    click.echo(yaml.safe_dump(job, sort_keys=False), nl=False)


def _image_id(image_key: str) -> str:
    """``plate1/A01.ome.tif`` -> ``A01`` (the output format's image id)."""
    name = image_key.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
