"""Skin PK of one series, one way: run the ``skin-pk`` steps, publish what they produce.

:func:`analyse_skin_series` is the series' use case, called by ``overnight pk run`` (a folder
on this machine) and by the queue (:mod:`overnight.jobs.tasks`: one job per dataset, the
dataset being one skin sample's series; a later image re-runs it, reusing every published
timepoint's labels). It publishes, under the dataset's prefix:

- per timepoint ``<image_id>/labels.tif``, ``overlay.png``, ``result.json`` (manifest last);
- ``profiles.csv``, ``nca.csv``, ``nca_depth.csv``, ``pk/*.png``, ``series.json`` and, when
  files or timepoints failed, ``failures.json`` — what :mod:`overnight.review.pk` reads.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from overnight.pipeline.runner import PreparedPipeline
from overnight.pipeline.skin_steps import LoadedSkinModel, SeriesInput
from overnight.results.layout import FAILURES_FILE, DatasetResults
from overnight.skin.pipeline import (
    STRUCTURE_CHANNEL,
    MeasuredSeries,
    SkinPkParams,
    TimepointResult,
)
from overnight.skin.series import SkinSeries, Timepoint
from overnight.storage import publish_result, read_manifest

logger = logging.getLogger(__name__)

SERIES_FILE = "series.json"


@dataclass(frozen=True)
class SeriesOutcome:
    """What became of a series: the timepoints analysed and the files or timepoints that failed.

    ``failures`` are ``{"image_id"?, "source", "error"}`` records, as in ``failures.json``.
    """

    series: SkinSeries
    analysed: tuple[str, ...]
    failures: tuple[dict[str, str], ...]
    model_version: str


def labels_tif(labels: np.ndarray, depths_um: tuple[float, ...]) -> bytes:
    """``ZYX`` compartment labels as a compressed TIFF with their depths."""
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        labels,
        photometric="minisblack",  # 3 or 4 planes would otherwise be taken for RGB(A)
        compression="zlib",
        metadata={"axes": "ZYX", "depths_um": list(depths_um)},
    )
    return buffer.getvalue()


def timepoint_record(
    result: TimepointResult, compartments: tuple[str, ...], model: str
) -> dict[str, Any]:
    """The ``result.json`` of one timepoint."""
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


def pixel_size_warnings(series: SkinSeries, model_pixel_um: float) -> list[str]:
    """Timepoints whose stated pixel size is far (> 25 %) from the model's training pixels."""
    return [
        f"{tp.image_id}: pixel size {tp.pixel_size_um} µm, the model was trained at "
        f"{model_pixel_um} µm; compartments may be less accurate"
        for tp in series.timepoints
        if tp.pixel_size_um and abs(tp.pixel_size_um / model_pixel_um - 1) > 0.25
    ]


class TimepointPublisher:
    """Publishes each timepoint's labels, overlay and result.json under ``<image_id>/``."""

    def __init__(
        self,
        results: DatasetResults,
        model_version: str,
        compartments: tuple[str, ...],
        force: bool,
    ) -> None:
        self.results, self.model_version = results, model_version
        self.compartments, self.force = compartments, force

    def stored_labels(self, timepoint: Timepoint) -> np.ndarray | None:
        """Labels of a complete earlier result (so a re-run reuses them), unless ``force``."""
        prefix = self.results.image_prefix(timepoint.image_id)
        if self.force or read_manifest(self.results.store, prefix) is None:
            return None
        data = self.results.store.read_bytes(f"{prefix}/labels.tif")
        return np.asarray(tifffile.imread(io.BytesIO(data)))

    def __call__(self, result: TimepointResult) -> None:
        """Publish one timepoint (a result reused from an earlier run is kept as it is)."""
        from overnight.skin.plots import overlay_png

        if result.reused_labels:
            return
        tp = result.timepoint
        record = timepoint_record(result, self.compartments, self.model_version)
        title = f"{tp.image_id}: compartments at t = {tp.time_min:g} min"
        artefacts = {
            "labels.tif": labels_tif(result.labels, tp.depths_um),
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
        publish_result(
            self.results.store,
            self.results.image_prefix(tp.image_id),
            artefacts,
            info,
            replace=self.force,
        )


def series_params(prepared: PreparedPipeline) -> SkinPkParams:
    """The pipeline's parameters in the form ``series.json`` records them."""
    return SkinPkParams(
        model=prepared.params_of("segment_compartments").model,
        background_adu=prepared.params_of("drug_profiles").background_adu,
        calibration=prepared.params_of("drug_profiles").calibration,
        unit=prepared.params_of("drug_profiles").unit,
        auc_method=prepared.params_of("nca").auc_method,
    )


def analyse_skin_series(
    path: Path, prepared: PreparedPipeline, results: DatasetResults, *, force: bool = False
) -> SeriesOutcome:
    """Run the ``skin-pk`` steps on the series at ``path`` and publish everything.

    Raises
    ------
    NoImagesError
        When ``path`` holds no stack that could be placed in time.
    """
    loaded: LoadedSkinModel = prepared.state_of("segment_compartments")
    model = loaded.model
    publisher = TimepointPublisher(results, model.version, model.config.compartments, force)
    run = prepared.run({"series": SeriesInput(path, publisher.stored_labels, publisher)})
    values = run.values
    series: SkinSeries = values["skin_series"]
    measured: MeasuredSeries = values["measured"]
    params = series_params(prepared)
    failures = [{"source": p.source, "error": p.reason} for p in series.problems] + [
        {"image_id": f.image_id, "source": ", ".join(f.sources), "error": f.reason}
        for f in measured.failures
    ]
    record = {
        "pipeline": "skin-pk",
        "model": model.version,
        "parameters": params.model_dump(mode="json"),
        "background_adu": values["background_adu"],
        "timepoints": [
            {
                "image_id": tp.image_id,
                "time_min": tp.time_min,
                "depths_um": list(tp.depths_um),
                "analysed": tp.image_id in measured.analysed,
            }
            for tp in series.timepoints
        ],
        "warnings": [
            *series.warnings,
            *values["pk_warnings"],
            *pixel_size_warnings(series, model.config.pixel_size_um),
        ],
        "failures": failures,
    }
    files = {
        "profiles.csv": values["profiles"].to_csv(index=False).encode(),
        "nca.csv": values["nca"].to_csv(index=False).encode(),
        "nca_depth.csv": values["nca_depth"].to_csv(index=False).encode(),
        **values["pk_plots"],
        SERIES_FILE: json.dumps(record, indent=2).encode(),
    }
    if failures:
        files[FAILURES_FILE] = json.dumps(failures, indent=2).encode()
    for name, data in files.items():
        results.write_file(name, data)
    return SeriesOutcome(series, measured.analysed, tuple(failures), model.version)
