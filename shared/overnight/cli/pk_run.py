"""``overnight pk run``: the skin-PK pipeline on one sample's time series of SRS stacks.

The work and the writing are the library's (:func:`overnight.pipeline.skin_pk.analyse_skin_series`,
the same the queue runs); this command maps its options onto the pipeline's step parameters.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from overnight.errors import OvernightError
from overnight.logs import configure_logging
from overnight.pipeline.definition import load_pipeline
from overnight.pipeline.runner import PreparedPipeline
from overnight.pipeline.skin_pk import analyse_skin_series, pixel_size_warnings
from overnight.results.layout import DatasetResults
from overnight.skin.pipeline import PIPELINE_NAME
from overnight.skin.series import find_series
from overnight.storage import open_store

logger = logging.getLogger(__name__)

#: Command-line option → (step, parameter) of the skin-pk pipeline.
OPTION_PARAMS = {
    "model": ("segment_compartments", "model"),
    "background_adu": ("drug_profiles", "background_adu"),
    "calibration": ("drug_profiles", "calibration"),
    "unit": ("drug_profiles", "unit"),
    "auc_method": ("nca", "auc_method"),
}


@click.command("run")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, help="Output folder (or s3:// URL).")
@click.option(
    "--model", default=None, help="Compartment model: folder, name or URI [default: shipped skin]."
)
@click.option(
    "--auc-method",
    type=click.Choice(["linlog", "linear"]),
    default=None,
    help="linlog: linear up, log down [default]; linear: linear trapezoids throughout.",
)
@click.option(
    "--background",
    "background_adu",
    type=float,
    default=None,
    help="Drug detector level (ADU) [default: from the earliest, pre-dose stack].",
)
@click.option(
    "--calibration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Concentration per ADU (e.g. from a standard) [default: 1, report ADU].",
)
@click.option("--unit", default=None, help="Concentration unit after --calibration, e.g. mM.")
@click.option(
    "--pipeline",
    "pipeline_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A skin-pk YAML whose parameters replace the built-in defaults.",
)
@click.option("--force", is_flag=True, help="Segment again and replace published results.")
def run(
    input_path: Path,
    out: str,
    model: str | None,
    auc_method: str | None,
    background_adu: float | None,
    calibration: float | None,
    unit: str | None,
    pipeline_file: Path | None,
    force: bool,
) -> None:
    """Skin PK of one sample: INPUT is a folder of timepoint stacks or one TCZYX file.

    \b
    Writes to --out:
      <image_id>/labels.tif, overlay.png, result.json, manifest.json   per timepoint
      profiles.csv      time, depth, compartment, signal, n_px
      nca.csv           one row per compartment (pooled over depth)
      nca_depth.csv     one row per compartment x depth
      pk/*.png          concentration-time, per depth, depth x time heatmap, NCA table
      series.json       order, background, warnings; failures.json when files failed
    Time and depth come from sidecars, the file-name convention (..._t-30min_depth-20um)
    or OME. A bad file is reported and skipped; the exit code is then 1.
    """  # noqa: D301 (click needs the real \b character to keep the layout)
    configure_logging("WARNING", "text")
    options = {
        "model": model,
        "auc_method": auc_method,
        "background_adu": background_adu,
        "calibration": calibration,
        "unit": unit,
    }
    overrides: dict[str, dict[str, object]] = {}
    for option, value in options.items():
        if value is not None:
            step_name, param = OPTION_PARAMS[option]
            overrides.setdefault(step_name, {})[param] = value
    try:
        series = find_series(input_path)
        prepared = PreparedPipeline(load_pipeline(pipeline_file or PIPELINE_NAME, overrides))
        skin_model = prepared.state_of("segment_compartments").model
        click.echo(
            f"{len(series.timepoints)} timepoint(s) in {input_path}; model {skin_model.version}"
        )
        for warning in pixel_size_warnings(series, skin_model.config.pixel_size_um):
            click.echo(f"warning: {warning}", err=True)
        result = analyse_skin_series(
            input_path, prepared, DatasetResults(open_store(out)), force=force
        )
    except OvernightError as err:
        raise click.ClickException(str(err)) from err
    series = result.series
    for failure in result.failures:
        what = f"{failure['image_id']} ({failure['source']})" if "image_id" in failure else ""
        click.echo(f"FAILED {what or failure['source']}: {failure['error']}", err=True)
    click.echo(
        f"{len(result.analysed)} timepoint(s) analysed -> {out} (profiles.csv, nca.csv, pk/)"
    )
    if series.problems or result.failures:
        raise SystemExit(1)
