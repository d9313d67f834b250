"""``overnight qc-web``: the QC web pages for every dataset in storage, or for one output folder."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from overnight.config import load_settings
from overnight.errors import ConfigError
from overnight.logs import configure_logging

#: The QC service's modules (the command line reaches services by name only).
QC_APP = "overnight_qc.app"
QC_CONFIG = "overnight_qc.core.config"


@click.command("qc-web")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port."
)
@click.option(
    "--dataset-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Show this embedded run's output folder (overnight run ... --out OUT) as one dataset, "
    "instead of every dataset under results/ of OVERNIGHT_STORAGE_URL.",
)
@click.pass_context
def qc_web(ctx: click.Context, host: str, port: int, dataset_dir: Path | None) -> None:
    """Review analysed images in the browser: accept, reject or flag them, see statistics.

    Pages are open to read (OVERNIGHT_QC_READS_PUBLIC); verdicts need OVERNIGHT_API_TOKEN,
    entered once in the sign-in form. OVERNIGHT_INGEST_URL adds live progress and retries.
    """
    import uvicorn

    try:
        create_app = importlib.import_module(QC_APP).create_app
        QcSettings = importlib.import_module(QC_CONFIG).QcSettings
    except ModuleNotFoundError as err:  # the service package is not installed
        raise click.ClickException(f"the QC service is not installed ({err.name} missing)") from err
    config_file = (ctx.obj or {}).get("config_file") if ctx.obj else None
    try:
        settings = load_settings(QcSettings, config_file, qc_dataset_dir=dataset_dir)
        configure_logging(settings.log_level, settings.log_format)
        app = create_app(settings)
    except ConfigError as err:
        raise click.ClickException(str(err)) from err
    where = dataset_dir or settings.storage_url
    click.echo(f"overnight QC for {where} on http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(), access_log=False)
