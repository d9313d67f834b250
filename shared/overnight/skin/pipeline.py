"""The skin-PK pipeline on an ordered series: compartments per plane, drug profiles, NCA.

Per timepoint (:func:`analyse_timepoint`): read the ``ZCYX`` stack, segment every plane with
the 2D compartment model (channel 0, structure), and take the mean drug signal (channel 1)
of each compartment in each plane, with its pixel count, and the drug channel's detector
level (:func:`overnight.analysis.estimate_background`).

Over the series (:func:`pk_analysis`): subtract the detector level of the earliest
(pre-dose) stack, apply the optional calibration (concentration per ADU) and run the NCA per
compartment (pooled over depth, pixel-weighted) and per compartment × depth.

:func:`analyse_series` does both and hands each timepoint's full result (labels, pixels) to a
callback, so that a caller can publish it and let it go: memory stays that of one stack.
A timepoint that cannot be read becomes a :class:`TimepointFailure`; the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from overnight.analysis.nca import AucMethod
from overnight.analysis.profiles import drug_profiles, estimate_background, nca_for_profiles
from overnight.errors import ConfigError, InvalidImageError
from overnight.models.skin import SkinModel, class_probabilities
from overnight.skin.flags import PlaneQuality, flag_planes
from overnight.skin.series import SkinSeries, Timepoint, read_timepoint

logger = logging.getLogger(__name__)

STRUCTURE_CHANNEL = 0
DRUG_CHANNEL = 1
PIPELINE_NAME = "skin-pk"


class SkinPkParams(BaseModel):
    """The parameters of the ``skin-pk`` pipeline file (defaults of ``overnight pk run``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(
        None, description="compartment model: folder, name or URI; None = shipped"
    )
    background_adu: float | None = Field(None, description="drug detector level; None = pre-dose")
    calibration: float = Field(1.0, gt=0, description="concentration per ADU")
    unit: str | None = Field(None, description="concentration unit after calibration")
    auc_method: Literal["linlog", "linear"] = "linlog"


def load_pk_params(path: Path | None = None) -> SkinPkParams:
    """Read the step parameters of ``skin-pk.yaml`` (the built-in one when ``path`` is None).

    Raises
    ------
    ConfigError
        When the file is not valid YAML or a parameter is unknown or invalid.
    """
    if path is None:
        text = (resources.files("overnight.pipeline.builtin") / f"{PIPELINE_NAME}.yaml").read_text()
    else:
        text = Path(path).read_text(encoding="utf-8")
    try:
        document = yaml.safe_load(text) or {}
        merged: dict[str, object] = {}
        for entry in document.get("steps", []):
            merged.update(entry.get("params") or {})
        return SkinPkParams.model_validate(merged)
    except (yaml.YAMLError, ValidationError, AttributeError, TypeError) as err:
        raise ConfigError(f"{path or PIPELINE_NAME}: not a valid skin-pk pipeline: {err}") from err


@dataclass(frozen=True, eq=False)
class TimepointResult:
    """One analysed timepoint.

    Attributes
    ----------
    timepoint : Timepoint
    stack : ndarray of shape (Z, C, Y, X)
        The pixels (C0 structure, C1 drug).
    labels : ndarray of uint8, shape (Z, Y, X)
        Compartment per pixel: 0 = none, k = ``compartments[k - 1]``.
    raw_profiles : pandas.DataFrame
        ``time, depth, compartment, signal, n_px`` with ``signal`` the mean drug channel (ADU,
        detector level not subtracted).
    drug_level_adu : float
        The drug channel's detector level estimated from this stack (meaningful pre-dose).
    seconds : float
        Time to read, segment and measure.
    reused_labels : bool
        True when ``labels`` were given (a published result), not predicted.
    flags : tuple of PlaneQuality
        QC signals and flags of each plane (:mod:`overnight.skin.flags`).
    """

    timepoint: Timepoint
    stack: np.ndarray
    labels: np.ndarray
    raw_profiles: pd.DataFrame
    drug_level_adu: float
    seconds: float
    reused_labels: bool = False
    flags: tuple[PlaneQuality, ...] = ()


@dataclass(frozen=True)
class TimepointFailure:
    """A timepoint that could not be analysed, with the files and the reason."""

    image_id: str
    time_min: float
    sources: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class PkAnalysis:
    """Background-corrected profiles and their NCA tables.

    Attributes
    ----------
    profiles : pandas.DataFrame
        ``time, depth, compartment, signal, n_px`` (``profiles.csv``).
    nca : pandas.DataFrame
        One row per compartment, pooled over depth (``nca.csv``).
    nca_depth : pandas.DataFrame
        One row per compartment × depth (``nca_depth.csv``).
    background_adu : float
        Detector level subtracted from every mean (ADU).
    calibration : float
        Concentration per ADU applied after the subtraction.
    warnings : tuple of str
    """

    profiles: pd.DataFrame
    nca: pd.DataFrame
    nca_depth: pd.DataFrame
    background_adu: float
    calibration: float
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class SeriesResult:
    """What :func:`analyse_series` returns: the PK analysis and the failed timepoints."""

    analysis: PkAnalysis
    analysed: tuple[str, ...]
    failures: tuple[TimepointFailure, ...]


def analyse_timepoint(
    timepoint: Timepoint, model: SkinModel, labels: np.ndarray | None = None
) -> TimepointResult:
    """Read, segment and measure one timepoint.

    Parameters
    ----------
    timepoint : Timepoint
    model : SkinModel
        The compartment model (its ``compartments`` name the labels).
    labels : ndarray of shape (Z, Y, X), optional
        Compartment labels to use instead of predicting them (e.g. from an earlier run).

    Raises
    ------
    InvalidImageError
        When the stack cannot be read or ``labels`` do not fit it.
    """
    start = time.perf_counter()
    stack = read_timepoint(timepoint)
    expected = (stack.shape[0], *stack.shape[2:])
    if labels is not None and labels.shape != expected:
        raise InvalidImageError(
            timepoint.image_id, f"stored labels {labels.shape} do not fit the stack {expected}"
        )
    reused = labels is not None
    confidence = None
    if labels is None:
        probabilities = class_probabilities(model, stack, timepoint.depths_um)
        labels, confidence = np.argmax(probabilities, axis=1).astype(np.uint8), probabilities.max(1)
    drug = stack[:, DRUG_CHANNEL]
    raw = drug_profiles(
        drug,
        labels,
        time_min=timepoint.time_min,
        depths_um=timepoint.depths_um,
        compartments=model.config.compartments,
    )
    level = estimate_background(drug[:, ::2, ::2])
    seconds = time.perf_counter() - start
    logger.info(
        "t = %g min: %d planes in %.2f s",
        timepoint.time_min,
        stack.shape[0],
        seconds,
        extra={"image_id": timepoint.image_id},
    )
    flags = flag_planes(
        stack, labels, timepoint.depths_um, model.config.compartments,
        max_probability=confidence, expect_drug=timepoint.time_min > 0,
    )  # fmt: skip
    return TimepointResult(timepoint, stack, labels, raw, level, seconds, reused, flags)


def corrected_profiles(
    raw_profiles: Sequence[pd.DataFrame],
    levels: Sequence[tuple[float, float]],
    *,
    background_adu: float | None = None,
    calibration: float = 1.0,
) -> tuple[pd.DataFrame, float, tuple[str, ...]]:
    """Subtract the drug detector level and calibrate: ``(profiles, background_adu, warnings)``.

    Parameters
    ----------
    raw_profiles : sequence of pandas.DataFrame
        :attr:`TimepointResult.raw_profiles` of each analysed timepoint.
    levels : sequence of (float, float)
        ``(time_min, drug_level_adu)`` of each analysed timepoint.
    background_adu : float, optional
        Detector level to subtract; ``None`` takes that of the earliest timepoint.
    calibration : float
        Concentration per ADU.

    Returns
    -------
    profiles : pandas.DataFrame
        ``time, depth, compartment, signal, n_px`` sorted by time and depth.
    background_adu : float
    warnings : tuple of str
    """
    warnings: list[str] = []
    if background_adu is None:
        if not levels:
            background_adu = 0.0
        else:
            first_time, background_adu = min(levels)
            if first_time > 0:
                warnings.append(
                    f"earliest stack is at t = {first_time:g} min, not pre-dose: the drug "
                    "background taken from it may include drug; give --background"
                )
    columns = ["time", "depth", "compartment", "signal", "n_px"]
    raw = (
        pd.concat(raw_profiles, ignore_index=True)
        if raw_profiles
        else pd.DataFrame(columns=columns)
    )
    profiles = raw.assign(signal=(raw["signal"].astype(float) - background_adu) * calibration)
    profiles = profiles.sort_values(["time", "depth"], kind="stable", ignore_index=True)
    for warning in warnings:
        logger.warning(warning)
    return profiles, float(background_adu), tuple(warnings)


def nca_tables(
    profiles: pd.DataFrame, auc_method: AucMethod = "linlog"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """NCA per compartment (pooled over depth) and per compartment × depth: ``(nca, nca_depth)``."""
    nca = nca_for_profiles(profiles, ("compartment",), auc_method=auc_method)
    present = profiles[profiles["n_px"] > 0]
    nca_depth = nca_for_profiles(present, ("compartment", "depth"), auc_method=auc_method)
    return nca, nca_depth


def pk_analysis(
    raw_profiles: Sequence[pd.DataFrame],
    levels: Sequence[tuple[float, float]],
    *,
    background_adu: float | None = None,
    calibration: float = 1.0,
    auc_method: AucMethod = "linlog",
) -> PkAnalysis:
    """Subtract the background, calibrate and run the NCA per compartment and per depth.

    :func:`corrected_profiles` then :func:`nca_tables` (the ``drug_profiles`` and ``nca``
    steps of the ``skin-pk`` pipeline).
    """
    profiles, background, warnings = corrected_profiles(
        raw_profiles, levels, background_adu=background_adu, calibration=calibration
    )
    nca, nca_depth = nca_tables(profiles, auc_method)
    return PkAnalysis(profiles, nca, nca_depth, background, calibration, warnings)


def analyse_series(
    series: SkinSeries,
    model: SkinModel,
    *,
    on_result: Callable[[TimepointResult], None] | None = None,
    stored_labels: Callable[[Timepoint], np.ndarray | None] | None = None,
    background_adu: float | None = None,
    calibration: float = 1.0,
    auc_method: AucMethod = "linlog",
) -> SeriesResult:
    """Analyse every timepoint of ``series`` in time order, then the PK of the whole.

    Parameters
    ----------
    series : SkinSeries
        From :func:`overnight.skin.series.find_series`.
    model : SkinModel
        The compartment model.
    on_result : callable, optional
        Called with each :class:`TimepointResult` (e.g. to publish it) before the next one is
        read.
    stored_labels : callable, optional
        Labels to reuse for a timepoint, or ``None`` to predict them.
    background_adu, calibration, auc_method
        As in :func:`pk_analysis`.

    Returns
    -------
    SeriesResult
        Failures of reading (or of ``on_result``'s :class:`InvalidImageError`) are collected,
        not raised.
    """
    measured = measure_timepoints(series, model, on_result=on_result, stored_labels=stored_labels)
    analysis = pk_analysis(
        measured.raw_profiles,
        measured.levels,
        background_adu=background_adu,
        calibration=calibration,
        auc_method=auc_method,
    )
    return SeriesResult(analysis, measured.analysed, measured.failures)


@dataclass(frozen=True)
class MeasuredSeries:
    """Every timepoint's raw profiles and detector level, and the timepoints that failed."""

    raw_profiles: tuple[pd.DataFrame, ...]
    levels: tuple[tuple[float, float], ...]
    analysed: tuple[str, ...]
    failures: tuple[TimepointFailure, ...]


def measure_timepoints(
    series: SkinSeries,
    model: SkinModel,
    *,
    on_result: Callable[[TimepointResult], None] | None = None,
    stored_labels: Callable[[Timepoint], np.ndarray | None] | None = None,
) -> MeasuredSeries:
    """Segment and measure every timepoint in time order (one stack in memory at a time).

    ``on_result`` gets each :class:`TimepointResult` before the next is read;
    ``stored_labels`` gives labels to reuse. A timepoint that cannot be read (or that
    ``on_result`` refuses with :class:`InvalidImageError`) becomes a failure.
    """
    raw, levels, analysed, failures = [], [], [], []
    for timepoint in series.timepoints:
        try:
            labels = stored_labels(timepoint) if stored_labels else None
            result = analyse_timepoint(timepoint, model, labels)
            if on_result is not None:
                on_result(result)
        except InvalidImageError as err:
            logger.error("%s: %s", timepoint.image_id, err, extra={"image_id": timepoint.image_id})
            failures.append(
                TimepointFailure(
                    timepoint.image_id, timepoint.time_min, timepoint.sources, str(err)
                )
            )
            continue
        raw.append(result.raw_profiles)
        levels.append((timepoint.time_min, result.drug_level_adu))
        analysed.append(timepoint.image_id)
    return MeasuredSeries(tuple(raw), tuple(levels), tuple(analysed), tuple(failures))
