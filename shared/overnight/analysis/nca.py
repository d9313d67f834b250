"""Noncompartmental analysis (NCA) of one concentration–time profile, as PKNCA and WinNonlin do it.

The rules, in the order they are applied:

1. Pairs with a missing (NaN/inf) time or concentration are dropped; the rest are sorted by time.
   Repeated time values make the profile ambiguous: every field is NaN with a reason.
2. Zeros are below the limit of quantification (BLQ). As in PKNCA's default ``conc.blq``, those
   before the first measurable (> 0) concentration are kept (so the AUC starts at the first
   sampled time), those between measurable ones are dropped, trailing ones are kept.
   ``cmax`` is the largest concentration and ``tmax`` the first time it occurs.
3. ``clast``/``tlast`` are the last measurable (> 0) concentration and its time.
4. ``auc_last`` integrates from the first time to ``tlast``: by linear trapezoids (``"linear"``) or
   linear-up/log-down (``"linlog"``: the log trapezoid ``dt·(c1 − c2)/ln(c1/c2)`` where the
   concentration falls and both ends are > 0, the linear one otherwise).
5. ``lambda_z`` is minus the slope of ln(concentration) against time, fitted by least squares on
   the last k positive points strictly after ``tmax`` (k ≥ ``min_points_lambda_z``). Among the
   candidate fits the best adjusted R² is found; of the fits within ``ADJ_R2_TOLERANCE`` of it
   whose slope falls, the one with the most points wins (PKNCA's ``adj.r.squared.factor`` rule).
6. ``half_life = ln 2 / lambda_z``; ``auc_inf_obs = auc_last + clast / lambda_z``.

Nothing here raises on a short or odd profile: fields that cannot be computed are NaN and
``reason`` says why. Background-corrected imaging signals can be slightly negative; negative
values are kept as measured (they count in the AUC and for ``cmax``) but are never "measurable".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

#: Fits whose adjusted R² is within this of the best one count as equally good
#: (PKNCA's default ``adj.r.squared.factor``); the one with the most points is used.
ADJ_R2_TOLERANCE = 1e-4

AucMethod = Literal["linear", "linlog"]
AUC_METHODS: tuple[str, ...] = ("linear", "linlog")

NAN = float("nan")


@dataclass(frozen=True)
class NcaResult:
    """NCA parameters of one profile, in the units of the input (time T, concentration C).

    Attributes
    ----------
    cmax, tmax : float
        Largest concentration [C] and the first time it occurs [T].
    clast, tlast : float
        Last measurable (> 0) concentration [C] and its time [T].
    auc_last : float
        Area under the curve from the first time to ``tlast`` [C·T].
    auc_inf_obs : float
        ``auc_last + clast / lambda_z`` [C·T].
    lambda_z : float
        Terminal elimination rate constant [1/T].
    half_life : float
        ``ln 2 / lambda_z`` [T].
    r2_adj : float
        Adjusted R² of the log-linear terminal fit.
    n_points_lambda_z : float
        Number of points in that fit (a float so that "none" can be NaN).
    reason : str or None
        Why some fields are NaN; ``None`` when every field was computed.
    """

    cmax: float
    tmax: float
    clast: float
    tlast: float
    auc_last: float
    auc_inf_obs: float
    lambda_z: float
    half_life: float
    r2_adj: float
    n_points_lambda_z: float
    reason: str | None = None


#: Column order of NCA tables (``nca.csv``), after any group columns: the fields of
#: :class:`NcaResult`, the one schema the writer (:func:`nca_table`) and the reader
#: (:mod:`overnight.review.pk`) share.
NCA_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(NcaResult))
#: The numeric NCA columns (all but ``reason``).
NCA_VALUES: tuple[str, ...] = tuple(c for c in NCA_COLUMNS if c != "reason")


@dataclass(frozen=True)
class _TerminalFit:
    n_points: int
    lambda_z: float
    r2_adj: float


def nca(
    time: ArrayLike,
    conc: ArrayLike,
    *,
    auc_method: AucMethod = "linlog",
    min_points_lambda_z: int = 3,
) -> NcaResult:
    """Compute the NCA parameters of one concentration–time profile.

    Parameters
    ----------
    time : array_like of shape (N,)
        Sampling times, any unit T, any order; NaN marks a missing sample.
    conc : array_like of shape (N,)
        Concentrations (or calibrated signals), any unit C; NaN marks a missing sample,
        0 a sample below the limit of quantification.
    auc_method : {"linlog", "linear"}
        Linear-up/log-down or linear trapezoids for ``auc_last``.
    min_points_lambda_z : int
        Fewest points a terminal fit may use (at least 3, so that adjusted R² is defined).

    Returns
    -------
    NcaResult
        NaN fields, with ``reason``, where the profile does not allow them.

    Raises
    ------
    ValueError
        If ``time`` and ``conc`` are not 1-D of equal length, ``auc_method`` is unknown, or
        ``min_points_lambda_z`` < 3.

    Examples
    --------
    >>> r = nca([0, 1, 2, 3, 4], [0.0, 8.0, 4.0, 2.0, 1.0])
    >>> round(r.lambda_z, 4), r.tmax
    (0.6931, 1.0)
    """
    t, c = _clean_profile(time, conc, auc_method, min_points_lambda_z)
    if t.size == 0:
        return _all_nan("no finite (time, concentration) pairs")
    if np.any(np.diff(t) == 0):
        repeated = np.unique(t[1:][np.diff(t) == 0]).tolist()
        return _all_nan(f"repeated time values {repeated}: cannot order the profile")

    t, c = _drop_middle_blq(t, c)
    reasons: list[str] = []
    i_max = int(np.argmax(c))
    cmax = float(c[i_max])
    measurable = np.flatnonzero(c > 0)
    if measurable.size == 0:
        reasons.append("no measurable (> 0) concentration")
        auc_last = 0.0 if (t.size > 1 and np.all(c == 0)) else NAN
        if t.size == 1:
            reasons.append("one time point: no AUC")
        return NcaResult(cmax, NAN, NAN, NAN, auc_last, NAN, NAN, NAN, NAN, NAN, "; ".join(reasons))

    tmax = float(t[i_max])
    i_last = int(measurable[-1])
    clast, tlast = float(c[i_last]), float(t[i_last])
    if t.size == 1:
        auc_last = NAN
        reasons.append("one time point: no AUC")
    else:
        auc_last = auc_trapezoid(t[: i_last + 1], c[: i_last + 1], method=auc_method)

    after_peak = (t > tmax) & (c > 0)
    fit, why_not = _best_terminal_fit(t[after_peak], c[after_peak], min_points_lambda_z)
    if fit is None:
        reasons.append(why_not)
        return NcaResult(
            cmax, tmax, clast, tlast, auc_last, NAN, NAN, NAN, NAN, NAN, "; ".join(reasons)
        )
    auc_inf_obs = auc_last + clast / fit.lambda_z
    return NcaResult(
        cmax=cmax,
        tmax=tmax,
        clast=clast,
        tlast=tlast,
        auc_last=auc_last,
        auc_inf_obs=auc_inf_obs,
        lambda_z=fit.lambda_z,
        half_life=math.log(2.0) / fit.lambda_z,
        r2_adj=fit.r2_adj,
        n_points_lambda_z=float(fit.n_points),
        reason="; ".join(reasons) or None,
    )


def nca_table(
    df: pd.DataFrame,
    time_col: str,
    conc_col: str,
    group_cols: Sequence[str] = (),
    auc_method: AucMethod = "linlog",
    min_points_lambda_z: int = 3,
) -> pd.DataFrame:
    """Run :func:`nca` on every group of a long table of profiles.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per sample.
    time_col, conc_col : str
        Columns holding time and concentration; non-numeric entries count as missing.
    group_cols : sequence of str
        Columns that identify one profile (e.g. ``("compartment", "depth")``); none = one profile.
    auc_method, min_points_lambda_z
        As in :func:`nca`.

    Returns
    -------
    pandas.DataFrame
        One row per group, sorted by the group columns: the group columns, then
        :data:`NCA_COLUMNS`.

    Raises
    ------
    ValueError
        If a named column is not in ``df``.
    """
    group_cols = list(group_cols)
    missing = [col for col in (time_col, conc_col, *group_cols) if col not in df.columns]
    if missing:
        raise ValueError(f"columns {missing} not in the table (it has {list(df.columns)})")
    rows: list[dict[str, object]] = []
    groups = df.groupby(group_cols, sort=True, dropna=False) if group_cols else [((), df)]
    for key, part in groups:
        key_values = key if isinstance(key, tuple) else (key,)
        result = nca(
            pd.to_numeric(part[time_col], errors="coerce").to_numpy(dtype=float, na_value=NAN),
            pd.to_numeric(part[conc_col], errors="coerce").to_numpy(dtype=float, na_value=NAN),
            auc_method=auc_method,
            min_points_lambda_z=min_points_lambda_z,
        )
        rows.append({**dict(zip(group_cols, key_values, strict=True)), **asdict(result)})
    return pd.DataFrame(rows, columns=[*group_cols, *NCA_COLUMNS])


def auc_trapezoid(time: np.ndarray, conc: np.ndarray, *, method: AucMethod = "linlog") -> float:
    """Area under sorted ``(time, conc)`` samples by linear or linear-up/log-down trapezoids.

    Parameters
    ----------
    time, conc : ndarray of shape (N,)
        Strictly increasing times and their finite concentrations.
    method : {"linlog", "linear"}
        ``"linlog"`` uses ``dt·(c1 − c2)/ln(c1/c2)`` on intervals where the concentration
        falls and both ends are > 0, and the linear trapezoid everywhere else.

    Returns
    -------
    float
        The area [C·T]; 0 for a single sample.

    Examples
    --------
    >>> auc_trapezoid(np.array([0.0, 1.0, 2.0]), np.array([0.0, 4.0, 2.0]), method="linear")
    5.0
    """
    if method not in AUC_METHODS:
        raise ValueError(f"auc_method must be one of {AUC_METHODS}, got {method!r}")
    dt = np.diff(time)
    c1, c2 = conc[:-1], conc[1:]
    areas = dt * (c1 + c2) / 2.0
    if method == "linlog":
        log_down = (c2 < c1) & (c2 > 0)  # c1 > c2 > 0
        ratio = np.log(c1[log_down] / c2[log_down])
        areas[log_down] = dt[log_down] * (c1[log_down] - c2[log_down]) / ratio
    return float(areas.sum())


def _clean_profile(
    time: ArrayLike, conc: ArrayLike, auc_method: str, min_points_lambda_z: int
) -> tuple[np.ndarray, np.ndarray]:
    """Check the arguments; return finite pairs sorted by time."""
    t = np.asarray(time, dtype=float)
    c = np.asarray(conc, dtype=float)
    if t.ndim != 1 or t.shape != c.shape:
        raise ValueError(
            f"time and conc must be 1-D of equal length, got shapes {t.shape} and {c.shape}"
        )
    if auc_method not in AUC_METHODS:
        raise ValueError(f"auc_method must be one of {AUC_METHODS}, got {auc_method!r}")
    if min_points_lambda_z < 3:
        raise ValueError(
            "min_points_lambda_z must be at least 3 (adjusted R² needs 3), "
            f"got {min_points_lambda_z}"
        )
    keep = np.isfinite(t) & np.isfinite(c)
    order = np.argsort(t[keep], kind="stable")
    return t[keep][order], c[keep][order]


def _drop_middle_blq(t: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop zeros lying between the first and the last measurable (> 0) concentration."""
    measurable = np.flatnonzero(c > 0)
    if measurable.size < 2:
        return t, c
    index = np.arange(c.size)
    middle_blq = (c == 0) & (index > measurable[0]) & (index < measurable[-1])
    return t[~middle_blq], c[~middle_blq]


def _best_terminal_fit(
    t: np.ndarray, c: np.ndarray, min_points: int
) -> tuple[_TerminalFit | None, str]:
    """Choose the terminal log-linear fit by the adjusted-R² rule; say why when there is none."""
    if t.size < min_points:
        return None, (
            f"{t.size} positive point(s) after Cmax; lambda_z needs at least {min_points}"
        )
    fits = [_log_linear_fit(t[-k:], c[-k:]) for k in range(min_points, t.size + 1)]
    defined = [f for f in fits if math.isfinite(f.r2_adj)]
    if not defined:
        return None, "no decline after Cmax (flat terminal phase): lambda_z undefined"
    best_r2 = max(f.r2_adj for f in defined)
    near_best = [f for f in defined if f.r2_adj > best_r2 - ADJ_R2_TOLERANCE]
    declining = [f for f in near_best if f.lambda_z > 0]
    if not declining:
        return None, "no decline in the terminal phase (best fit has lambda_z <= 0)"
    return max(declining, key=lambda f: f.n_points), ""


def _log_linear_fit(t: np.ndarray, c: np.ndarray) -> _TerminalFit:
    """Least-squares line through ``(t, ln c)``; adjusted R² is NaN when ln c is constant."""
    y = np.log(c)
    n = t.size
    t_mean, y_mean = t.mean(), y.mean()
    sxx = float(np.sum((t - t_mean) ** 2))
    sxy = float(np.sum((t - t_mean) * (y - y_mean)))
    ss_tot = float(np.sum((y - y_mean) ** 2))
    slope = sxy / sxx
    # ln c constant up to rounding: R² is 0/0, there is no decline to fit.
    if ss_tot <= n * (1e-12 * max(1.0, abs(y_mean))) ** 2:
        return _TerminalFit(n, -slope, NAN)
    residuals = y - (y_mean + slope * (t - t_mean))
    ss_res = float(np.sum(residuals**2))
    r2 = 1.0 - ss_res / ss_tot
    r2_adj = 1.0 - (1.0 - r2) * (n - 1) / (n - 2)
    return _TerminalFit(n, -slope, r2_adj)


def _all_nan(reason: str) -> NcaResult:
    return NcaResult(NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, reason)
