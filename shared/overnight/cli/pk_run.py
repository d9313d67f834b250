"""``overnight pk run``: the skin-PK pipeline on one sample's time series of SRS stacks."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import click
import numpy as np
import tifffile

from overnight.errors import OvernightError
from overnight.logs import configure_logging
from overnight.skin.pipeline import (
    STRUCTURE_CHANNEL,
    SeriesResult,
    SkinPkParams,
    TimepointResult,
    analyse_series,
    load_pk_params,
)
from overnight.skin.series import SkinSeries, Timepoint, find_series
from overnight.storage import ObjectStore, open_store, publish_result, read_manifest
from overnight.storage.publish import write_dataset_file

logger = logging.getLogger(__name__)


def _labels_tif(labels: np.ndarray, depths_um: tuple[float, ...]) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        labels,
        photometric="minisblack",  # 3 or 4 planes would otherwise be taken for RGB(A)
        compression="zlib",
        metadata={"axes": "ZYX", "depths_um": list(depths_um)},
    )
    return buffer.getvalue()


def _result_record(
    result: TimepointResult, compartments: tuple[str, ...], model: str
) -> dict[str, Any]:
    tp = result.timepoint
    raw = result.raw_profiles
    pixels = {name: int(raw.loc[raw["compartment"] == name, "n_px"].sum()) for name in compartments}
    return {
        "image_id": tp.image_id,
        "pipeline": "skin-pk",
        "metadata": {"time_min": tp.time_min, "n_depths": len(tp.depths_um)},
        "summary": {f"px_{name}": n for name, n in pixels.items()},
        "depths_um": list(tp.depths_um),
        "pixel_size_um": tp.pixel_size_um,
        "sources": list(tp.sources),
        "compartments": list(compartments),
        "model": model,
        "labels_reused": result.reused_labels,
        "drug_level_adu": result.drug_level_adu,
        "planes": json.loads(
            raw.rename(columns={"signal": "drug_mean_adu"}).to_json(orient="records")
        ),
        "seconds": round(result.seconds, 3),
    }


def _pixel_size_warnings(series: SkinSeries, model_pixel_um: float) -> list[str]:
    """Timepoints whose stated pixel size is far (> 25 %) from the model's training pixels."""
    return [
        f"{tp.image_id}: pixel size {tp.pixel_size_um} µm, the model was trained at "
        f"{model_pixel_um} µm; compartments may be less accurate"
        for tp in series.timepoints
        if tp.pixel_size_um and abs(tp.pixel_size_um / model_pixel_um - 1) > 0.25
    ]


class _Publisher:
    """Publishes each timepoint's labels, overlay and result.json under ``<image_id>/``."""

    def __init__(
        self, store: ObjectStore, model_version: str, compartments: tuple[str, ...], force: bool
    ):
        self.store, self.model_version, self.compartments, self.force = (
            store,
            model_version,
            compartments,
            force,
        )

    def stored_labels(self, timepoint: Timepoint) -> np.ndarray | None:
        """Labels of a complete earlier result (so a re-run reuses them), unless --force."""
        if self.force or read_manifest(self.store, timepoint.image_id) is None:
            return None
        return np.asarray(
            tifffile.imread(io.BytesIO(self.store.read_bytes(f"{timepoint.image_id}/labels.tif")))
        )

    def __call__(self, result: TimepointResult) -> None:
        from overnight.skin.plots import overlay_png

        if result.reused_labels:  # published by an earlier run: keep it as it is
            return
        tp = result.timepoint
        record = _result_record(result, self.compartments, self.model_version)
        title = f"{tp.image_id}: compartments at t = {tp.time_min:g} min"
        artefacts = {
            "labels.tif": _labels_tif(result.labels, tp.depths_um),
            "overlay.png": overlay_png(
                result.stack[:, STRUCTURE_CHANNEL],
                result.labels,
                tp.depths_um,
                self.compartments,
                title,
                tp.pixel_size_um,
            ),
            "result.json": json.dumps(record, indent=2).encode(),
        }
        info = {"pipeline": "skin-pk", "model": self.model_version, "time_min": tp.time_min}
        publish_result(self.store, tp.image_id, artefacts, info, replace=self.force)


def _write_dataset(
    store: ObjectStore,
    series: SkinSeries,
    result: SeriesResult,
    params: SkinPkParams,
    model_version: str,
    pixel_um: float,
) -> None:
    from overnight.skin import plots

    pk = result.analysis
    unit = params.unit or ("calibrated units" if params.calibration != 1.0 else None)
    files = {
        "profiles.csv": pk.profiles.to_csv(index=False).encode(),
        "nca.csv": pk.nca.to_csv(index=False).encode(),
        "nca_depth.csv": pk.nca_depth.to_csv(index=False).encode(),
    }
    if len(pk.profiles):
        files |= {
            "pk/concentration_time.png": plots.concentration_time_png(pk.profiles, pk.nca, unit),
            "pk/depth_profiles.png": plots.depth_profiles_png(pk.profiles, unit),
            "pk/depth_time_heatmap.png": plots.depth_time_heatmap_png(pk.profiles, unit),
            "pk/nca_table.png": plots.nca_table_png(pk.nca, unit, auc_method=params.auc_method),
        }
    failures = [{"source": p.source, "error": p.reason} for p in series.problems] + [
        {"image_id": f.image_id, "source": ", ".join(f.sources), "error": f.reason}
        for f in result.failures
    ]
    record = {
        "pipeline": "skin-pk",
        "model": model_version,
        "parameters": params.model_dump(mode="json"),
        "background_adu": pk.background_adu,
        "timepoints": [
            {
                "image_id": tp.image_id,
                "time_min": tp.time_min,
                "depths_um": list(tp.depths_um),
                "analysed": tp.image_id in result.analysed,
            }
            for tp in series.timepoints
        ],
        "warnings": [*series.warnings, *pk.warnings, *_pixel_size_warnings(series, pixel_um)],
        "failures": failures,
    }
    files["series.json"] = json.dumps(record, indent=2).encode()
    if failures:
        files["failures.json"] = json.dumps(failures, indent=2).encode()
    for key, data in files.items():
        write_dataset_file(store, key, data)


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
    from overnight.models.skin import load_skin_model

    configure_logging("WARNING", "text")
    try:
        params = load_pk_params(pipeline_file)
        updates = {
            "model": model,
            "auc_method": auc_method,
            "background_adu": background_adu,
            "calibration": calibration,
            "unit": unit,
        }
        params = params.model_copy(update={k: v for k, v in updates.items() if v is not None})
        series = find_series(input_path)
        skin_model = load_skin_model(params.model)
        store = open_store(out)
        publisher = _Publisher(store, skin_model.version, skin_model.config.compartments, force)
        click.echo(
            f"{len(series.timepoints)} timepoint(s) in {input_path}; model {skin_model.version}"
        )
        for warning in _pixel_size_warnings(series, skin_model.config.pixel_size_um):
            click.echo(f"warning: {warning}", err=True)
        result = analyse_series(
            series,
            skin_model,
            on_result=publisher,
            stored_labels=publisher.stored_labels,
            background_adu=params.background_adu,
            calibration=params.calibration,
            auc_method=params.auc_method,
        )
        _write_dataset(
            store, series, result, params, skin_model.version, skin_model.config.pixel_size_um
        )
    except OvernightError as err:
        raise click.ClickException(str(err)) from err
    for problem in series.problems:
        click.echo(f"FAILED {problem.source}: {problem.reason}", err=True)
    for failure in result.failures:
        click.echo(
            f"FAILED {failure.image_id} ({', '.join(failure.sources)}): {failure.reason}", err=True
        )
    click.echo(
        f"{len(result.analysed)} timepoint(s) analysed -> {out} (profiles.csv, nca.csv, pk/)"
    )
    if series.problems or result.failures:
        raise SystemExit(1)
