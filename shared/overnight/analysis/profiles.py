"""Drug profiles from images: mean drug signal per compartment, depth and time, and their NCA.

The drug channel (SRS at 2250 cm⁻¹) has no background signal apart from the detector level
(offset plus noise), so a compartment's drug signal is the mean of its pixels minus that
level. The level is estimated from the pre-dose (t = 0) stack by
:func:`estimate_background`, or given. A profile table (``profiles.csv``) has one row per
``time × depth × compartment``: ``time, depth, compartment, signal, n_px``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from overnight.analysis.nca import AucMethod, nca_table
from overnight.lazy import lazy_module

if TYPE_CHECKING:  # the `analysis` extra, imported on first use (overnight.lazy)
    from scipy import stats
else:
    stats = lazy_module("scipy.stats")

logger = logging.getLogger(__name__)

#: Columns of a profile table, in order.
PROFILE_COLUMNS: tuple[str, ...] = ("time", "depth", "compartment", "signal", "n_px")

#: Fraction of the darkest and of the brightest pixels ignored when estimating the background.
BACKGROUND_TRIM = 0.1


def estimate_background(pre_dose_drug: np.ndarray, trim: float = BACKGROUND_TRIM) -> float:
    """Detector level (ADU) of a drug channel imaged before the drug arrived.

    A symmetrically trimmed mean: unbiased for the symmetric read noise of a drug-free image
    (a low percentile would sit several σ below the level; the median of integer pixels is off
    by up to 0.5 ADU, which matters for faint compartments), yet robust to hot pixels and to
    drug already present in up to ``trim`` of the pixels.

    Parameters
    ----------
    pre_dose_drug : ndarray, any shape (e.g. ``ZYX``)
        Drug channel of the first (t = 0) stack.
    trim : float
        Fraction cut from each end of the sorted pixel values, in [0, 0.5).

    Returns
    -------
    float
        Background level in the image's units.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = np.rint(100 + 5 * rng.standard_normal((4, 64, 64)))
    >>> round(estimate_background(image), 1)
    100.0
    """
    if not 0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5), got {trim}")
    return float(stats.trim_mean(np.asarray(pre_dose_drug, dtype=float).ravel(), trim))


def drug_profiles(
    drug: np.ndarray,
    labels: np.ndarray,
    *,
    time_min: float,
    depths_um: Sequence[float],
    compartments: Sequence[str],
    background: float | None = None,
    calibration: float = 1.0,
) -> pd.DataFrame:
    """Mean drug signal of each compartment in each plane of one timepoint.

    Parameters
    ----------
    drug : ndarray of shape (Z, Y, X)
        Drug channel (ADU).
    labels : ndarray of int, shape (Z, Y, X)
        Compartment labels: 0 = none, k = ``compartments[k - 1]``.
    time_min : float
        Acquisition time (min after dosing).
    depths_um : sequence of float, length Z
        Depth of each plane (µm).
    compartments : sequence of str
        Compartment names in label order.
    background : float, optional
        Detector level (ADU) subtracted from the means. ``None`` subtracts nothing (the
        channel is taken as already background-free); for raw images pass
        :func:`estimate_background` of the pre-dose stack, as
        :func:`series_drug_profiles` does.
    calibration : float
        Concentration per ADU; 1 keeps the signal in ADU.

    Returns
    -------
    pandas.DataFrame
        :data:`PROFILE_COLUMNS`, one row per depth × compartment (``signal`` NaN and
        ``n_px`` 0 where the compartment is absent from a plane).

    Raises
    ------
    ValueError
        If shapes disagree or a label has no compartment name.
    """
    drug = np.asarray(drug)
    labels = np.asarray(labels)
    if drug.ndim != 3 or drug.shape != labels.shape:
        raise ValueError(
            f"drug and labels must both be ZYX of one shape, got {drug.shape} and {labels.shape}"
        )
    if len(depths_um) != drug.shape[0]:
        raise ValueError(f"{len(depths_um)} depths given for {drug.shape[0]} planes")
    n_labels = len(compartments) + 1
    if labels.size and (labels.min() < 0 or labels.max() >= n_labels):
        raise ValueError(
            f"labels span {labels.min()}..{labels.max()} but only 0..{n_labels - 1} "
            f"are named ({list(compartments)})"
        )
    level = 0.0 if background is None else background
    rows = []
    for z, depth in enumerate(depths_um):
        flat = labels[z].ravel().astype(np.intp)
        counts = np.bincount(flat, minlength=n_labels)
        sums = np.bincount(flat, weights=drug[z].ravel().astype(float), minlength=n_labels)
        for label, name in enumerate(compartments, start=1):
            n_px = int(counts[label])
            signal = (sums[label] / n_px - level) * calibration if n_px else float("nan")
            rows.append((float(time_min), float(depth), name, signal, n_px))
    return pd.DataFrame(rows, columns=list(PROFILE_COLUMNS))


def series_drug_profiles(
    drugs: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    *,
    times_min: Sequence[float],
    depths_um: Sequence[float],
    compartments: Sequence[str],
    background: float | None = None,
    calibration: float = 1.0,
) -> pd.DataFrame:
    """Profile table of a whole series; the background comes from the earliest stack.

    Parameters
    ----------
    drugs, labels : sequences of ndarray of shape (Z, Y, X)
        Drug channel and compartment labels of each timepoint.
    times_min : sequence of float
        Acquisition time of each timepoint (min); the earliest should be pre-dose.
    depths_um, compartments, calibration
        As in :func:`drug_profiles`.
    background : float, optional
        Detector level (ADU); ``None`` estimates it from the earliest timepoint.

    Returns
    -------
    pandas.DataFrame
        :data:`PROFILE_COLUMNS`, sorted by time, depth and label order.
    """
    if not len(drugs) == len(labels) == len(times_min):
        raise ValueError(
            f"{len(drugs)} drug stacks, {len(labels)} label stacks and {len(times_min)} times"
        )
    if background is None and len(drugs):
        first = int(np.argmin(times_min))
        background = estimate_background(drugs[first])
        logger.info(
            "drug background %.2f ADU from the stack at t = %s min", background, times_min[first]
        )
    tables = [
        drug_profiles(
            drug,
            label,
            time_min=t,
            depths_um=depths_um,
            compartments=compartments,
            background=background,
            calibration=calibration,
        )  # fmt: skip
        for drug, label, t in zip(drugs, labels, times_min, strict=True)
    ]
    table = (
        pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=PROFILE_COLUMNS)
    )
    return table.sort_values(["time", "depth"], kind="stable", ignore_index=True)


def pk_profiles(profiles: pd.DataFrame, by: Sequence[str] = ("compartment",)) -> pd.DataFrame:
    """Pool a profile table over depth: pixel-weighted mean signal per ``by`` group and time.

    Parameters
    ----------
    profiles : pandas.DataFrame
        A profile table (:data:`PROFILE_COLUMNS`).
    by : sequence of str
        Columns kept apart (default one curve per compartment).

    Returns
    -------
    pandas.DataFrame
        ``*by, time, signal, n_px``: ``signal = Σ signal·n_px / Σ n_px`` over the rows with
        pixels (NaN where none), ``n_px`` their sum.
    """
    keys = [*by, "time"]
    missing = [col for col in (*keys, "signal", "n_px") if col not in profiles.columns]
    if missing:
        raise ValueError(f"profile table lacks columns {missing}")
    present = profiles["n_px"].to_numpy() > 0
    weighted = profiles.assign(
        _weighted=np.where(present, profiles["signal"] * profiles["n_px"], 0.0)
    )
    pooled = weighted.groupby(keys, sort=True, dropna=False).agg(
        _weighted=("_weighted", "sum"), n_px=("n_px", "sum")
    )
    pooled["signal"] = pooled["_weighted"] / pooled["n_px"].where(pooled["n_px"] > 0)
    return pooled.reset_index()[[*keys, "signal", "n_px"]]


def nca_for_profiles(
    profiles: pd.DataFrame,
    by: Sequence[str] = ("compartment",),
    *,
    auc_method: AucMethod = "linlog",
    min_points_lambda_z: int = 3,
) -> pd.DataFrame:
    """NCA of a profile table, one row per ``by`` group (the ``nca.csv`` table).

    Parameters
    ----------
    profiles : pandas.DataFrame
        A profile table (:data:`PROFILE_COLUMNS`).
    by : sequence of str
        ``("compartment",)`` pools each compartment over depth with :func:`pk_profiles`;
        ``("compartment", "depth")`` analyses every plane's curve on its own.
    auc_method, min_points_lambda_z
        As in :func:`overnight.analysis.nca.nca`.

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns, then :data:`overnight.analysis.nca.NCA_COLUMNS`.
    """
    curves = profiles if "depth" in by else pk_profiles(profiles, by)
    return nca_table(
        curves, "time", "signal", group_cols=by, auc_method=auc_method,
        min_points_lambda_z=min_points_lambda_z,
    )  # fmt: skip
