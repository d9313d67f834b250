"""NCA on hand-computed profiles; the arithmetic is in the comments."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from overnight.analysis.nca import NCA_COLUMNS, NcaResult, auc_trapezoid, nca, nca_table

LN2 = math.log(2.0)


def _same(a: NcaResult, b: NcaResult) -> bool:
    return all(
        x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(a.__dict__.values(), b.__dict__.values(), strict=True)
    )


def test_mono_exponential_gives_exact_lambda_and_auc_inf() -> None:
    # C(t) = 100·exp(−0.1·t) sampled at t = 0, 1, 2, 4, 8.
    # tmax = 0 (the first point), so the terminal candidates are t = 1, 2, 4, 8: every subset lies
    # exactly on ln C = ln 100 − 0.1·t, adj-R² = 1 for k = 3 and 4, the rule takes k = 4.
    # The log trapezoid is exact for an exponential: AUC_0-8 = 100/0.1·(1 − e^−0.8)
    # = 1000·(1 − 0.449329) = 550.671. AUC_inf = 550.671 + C(8)/0.1 = 550.671 + 449.329 = 1000.
    t = np.array([0.0, 1.0, 2.0, 4.0, 8.0])
    r = nca(t, 100.0 * np.exp(-0.1 * t))
    assert r.cmax == 100.0 and r.tmax == 0.0
    assert r.tlast == 8.0 and r.clast == pytest.approx(44.9329, abs=1e-4)
    assert r.lambda_z == pytest.approx(0.1, rel=1e-12)
    assert r.half_life == pytest.approx(LN2 / 0.1, rel=1e-12)  # 6.931
    assert r.n_points_lambda_z == 4.0 and r.r2_adj == pytest.approx(1.0)
    assert r.auc_last == pytest.approx(550.671, abs=1e-3)
    assert r.auc_inf_obs == pytest.approx(1000.0, rel=1e-12)
    assert r.reason is None


def test_linear_and_linlog_auc_on_four_points() -> None:
    # t = 0, 1, 2, 4; C = 0, 4, 2, 1
    # linear: (0+4)/2·1 + (4+2)/2·1 + (2+1)/2·2 = 2 + 3 + 3 = 8
    # linlog: 0→4 rises → linear 2; 4→2 falls: 1·(4−2)/ln 2 = 2.885390;
    #         2→1 falls: 2·(2−1)/ln 2 = 2.885390; total 7.770780
    t, c = [0.0, 1.0, 2.0, 4.0], [0.0, 4.0, 2.0, 1.0]
    assert nca(t, c, auc_method="linear").auc_last == pytest.approx(8.0)
    assert nca(t, c, auc_method="linlog").auc_last == pytest.approx(2 + 4 / LN2)  # 7.770780
    assert auc_trapezoid(np.array(t), np.array(c), method="linear") == pytest.approx(8.0)
    # only t = 2 and 4 lie after tmax = 1: two points cannot give lambda_z
    r = nca(t, c)
    assert math.isnan(r.lambda_z) and math.isnan(r.auc_inf_obs)
    assert "2 positive point(s) after Cmax" in (r.reason or "")


def test_blq_zeros_at_start_are_kept() -> None:
    # t = 0..5, C = 0, 0, 16, 8, 4, 2: Cmax 16 at t = 2; the AUC starts at t = 0.
    # linear: 0 + (0+16)/2 + (16+8)/2 + (8+4)/2 + (4+2)/2 = 8 + 12 + 6 + 3 = 29
    #   (dropping the zeros would give 21: the test tells the two apart)
    # linlog: 8 (rising, linear) + 8/ln2 + 4/ln2 + 2/ln2 = 8 + 14/0.693147 = 28.197790
    # lambda_z on t = 3, 4, 5 (8, 4, 2 halve every unit) = ln 2; AUC_inf = 28.19779 + 2/ln2
    t = [0, 1, 2, 3, 4, 5]
    c = [0, 0, 16, 8, 4, 2]
    assert nca(t, c, auc_method="linear").auc_last == pytest.approx(29.0)
    r = nca(t, c)
    assert r.auc_last == pytest.approx(8 + 14 / LN2)
    assert r.cmax == 16 and r.tmax == 2
    assert r.lambda_z == pytest.approx(LN2) and r.n_points_lambda_z == 3
    assert r.auc_inf_obs == pytest.approx(8 + 16 / LN2)  # 31.083181


def test_zeros_between_measurable_values_are_dropped() -> None:
    # PKNCA's default conc.blq (first keep, middle drop, last keep):
    # t = 0..4, C = 0, 8, 0, 4, 2 → the zero at t = 2 is dropped, the one at t = 0 kept.
    # linear: (0+8)/2·1 + (8+4)/2·2 + (4+2)/2·1 = 4 + 12 + 3 = 19
    #   (keeping the middle zero would give 4 + 4 + 2 + 3 = 13)
    r = nca([0, 1, 2, 3, 4], [0, 8, 0, 4, 2], auc_method="linear")
    assert r.auc_last == pytest.approx(19.0)


def test_trailing_zeros_end_the_auc_at_tlast() -> None:
    # C = 0, 6, 3, 0 at t = 0, 1, 2, 3: tlast = 2 (the last C > 0); AUC_last (linear) =
    # 3 + 4.5 = 7.5, not 9 (the 2→3 interval is after tlast)
    r = nca([0, 1, 2, 3], [0, 6, 3, 0], auc_method="linear")
    assert r.tlast == 2 and r.clast == 3
    assert r.auc_last == pytest.approx(7.5)


def test_single_point_gives_nan_with_reasons() -> None:
    r = nca([5.0], [3.0])
    assert (r.cmax, r.tmax, r.clast, r.tlast) == (3.0, 5.0, 3.0, 5.0)
    assert math.isnan(r.auc_last) and math.isnan(r.lambda_z) and math.isnan(r.half_life)
    assert "one time point" in (r.reason or "")


def test_empty_and_all_zero_profiles() -> None:
    r = nca([], [])
    assert math.isnan(r.cmax) and r.reason == "no finite (time, concentration) pairs"
    z = nca([0, 1, 2, 3], [0, 0, 0, 0])
    assert z.cmax == 0 and z.auc_last == 0  # PKNCA: all-zero profiles have AUC 0
    assert math.isnan(z.tmax) and math.isnan(z.tlast) and math.isnan(z.lambda_z)
    assert "no measurable" in (z.reason or "")


def test_flat_profile_has_no_lambda_z() -> None:
    # C = 5 at t = 0..3: tmax = 0 (first max); t = 1, 2, 3 all at 5: no decline.
    # AUC_last = 3·5 = 15 (linlog falls back to linear when C does not fall).
    r = nca([0, 1, 2, 3], [5, 5, 5, 5])
    assert r.tmax == 0 and r.clast == 5 and r.tlast == 3
    assert r.auc_last == pytest.approx(15.0)
    assert math.isnan(r.lambda_z) and math.isnan(r.auc_inf_obs)
    assert "no decline" in (r.reason or "")


def test_rising_terminal_phase_has_no_lambda_z() -> None:
    # peak at t = 1 (10), then 2, 3, 4 rising: every fit has a positive slope
    r = nca([0, 1, 2, 3, 4, 5], [0, 10, 2, 3, 4, 5])
    assert math.isnan(r.lambda_z)
    assert "no decline" in (r.reason or "")


def test_missing_values_are_dropped() -> None:
    t = [0, 1, float("nan"), 2, 3, 4, 5]
    c = [0, 0, 7.0, 16, float("nan"), 4, 2]
    expected = nca([0, 1, 2, 4, 5], [0, 0, 16, 4, 2])
    assert _same(nca(t, c), expected)
    # None (e.g. from JSON) counts as missing too
    assert _same(nca([0, 1, 2, 4, 5, 6], [0, 0, 16, 4, 2, None]), expected)


def test_unsorted_times_are_sorted() -> None:
    t = [0, 1, 2, 3, 4, 5]
    c = [0, 0, 16, 8, 4, 2]
    order = [3, 0, 5, 1, 4, 2]
    shuffled = nca([t[i] for i in order], [c[i] for i in order])
    assert _same(shuffled, nca(t, c))
    assert shuffled.tmax == 2


def test_repeated_times_give_nan_not_an_exception() -> None:
    r = nca([0, 1, 1, 2], [0, 3, 4, 1])
    assert math.isnan(r.cmax) and "repeated time values [1.0]" in (r.reason or "")


def test_adj_r2_excludes_an_early_point_that_worsens_the_fit() -> None:
    # t = 0, 1, 2, 4, 6, 8; C = 0, 100, 60, 40, 20, 10. Cmax at t = 1 is never a candidate.
    # Candidates: last 3 (t = 4, 6, 8; ln C = 3.6889, 2.9957, 2.3026, exactly halving per 2)
    #   → adj-R² = 1, lambda_z = ln2/2 = 0.346574.
    # last 4 (adds t = 2, ln 60 = 4.0943, above the line):
    #   mean t = 5, Sxx = 9+1+1+9 = 20, mean ln C = 3.2704,
    #   Sxy = −3·0.8239 − 1·0.4185 + 1·(−0.2747) + 3·(−0.9678) = −6.0684 → slope −0.30342,
    #   SStot = 1.8662, R² = 0.30342·6.0684/1.8662 = 0.9867,
    #   adj-R² = 1 − (1 − 0.9867)·3/2 = 0.9800 < 1 − 1e-4 → rejected.
    r = nca([0, 1, 2, 4, 6, 8], [0, 100, 60, 40, 20, 10])
    assert r.n_points_lambda_z == 3
    assert r.lambda_z == pytest.approx(LN2 / 2)
    assert r.r2_adj == pytest.approx(1.0)
    # AUC_inf = AUC_last + 10/0.346574 = AUC_last + 28.8539
    assert r.auc_inf_obs - r.auc_last == pytest.approx(10 / (LN2 / 2))


def test_adj_r2_tolerance_prefers_more_points() -> None:
    # Same profile with C(2) = 80.5, a hair above the line through 40, 20, 10 (which gives 80):
    # the 4-point fit has adj-R² = 0.999993 (1 − 7.2e-6), within 1e-4 of the 3-point fit's 1.0,
    # so the fit with MORE points wins: n = 4, lambda_z = 0.347508 (not ln2/2 = 0.346574).
    r = nca([0, 1, 2, 4, 6, 8], [0, 100, 80.5, 40, 20, 10])
    assert r.n_points_lambda_z == 4
    assert r.r2_adj == pytest.approx(0.9999928, abs=1e-6)
    assert r.lambda_z == pytest.approx(0.347508, abs=1e-6)
    # With C(2) = 60 (previous test) the 4-point fit is 0.02 worse: not within tolerance.


def test_min_points_lambda_z_is_respected() -> None:
    # C halves each unit after the peak at t = 1: t = 2, 3, 4 are 3 points; asking for 4 fails
    t, c = [0, 1, 2, 3, 4], [0, 16, 8, 4, 2]
    assert nca(t, c).lambda_z == pytest.approx(LN2)
    r = nca(t, c, min_points_lambda_z=4)
    assert math.isnan(r.lambda_z) and "needs at least 4" in (r.reason or "")


def test_negative_noise_values_are_not_measurable() -> None:
    # background-corrected signals: −0.5 at t = 4 is kept in the AUC but tlast stays at t = 3
    r = nca([0, 1, 2, 3, 4], [-0.2, 8, 4, 2, -0.5], auc_method="linear")
    assert r.tlast == 3 and r.clast == 2
    # (−0.2+8)/2 + (8+4)/2 + (4+2)/2 = 3.9 + 6 + 3 = 12.9
    assert r.auc_last == pytest.approx(12.9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"auc_method": "log"}, "auc_method"),
        ({"min_points_lambda_z": 2}, "at least 3"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        nca([0, 1, 2], [0, 1, 0], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="equal length"):
        nca([0, 1, 2], [0, 1])


def test_nca_table_one_row_per_group() -> None:
    df = pd.DataFrame(
        {
            "compartment": ["b"] * 6 + ["a"] * 4,
            "time": [0, 1, 2, 3, 4, 5, 0, 1, 2, 4],
            "signal": [0, 0, 16, 8, 4, 2, 0, 4, 2, 1],
        }
    )
    table = nca_table(df, "time", "signal", group_cols=["compartment"], auc_method="linear")
    assert list(table.columns) == ["compartment", *NCA_COLUMNS]
    assert table["compartment"].tolist() == ["a", "b"]
    assert table["auc_last"].tolist() == pytest.approx([8.0, 29.0])
    assert table["lambda_z"].isna().tolist() == [True, False]
    assert table["reason"].isna().tolist() == [False, True]
    whole = nca_table(df[df.compartment == "b"], "time", "signal")
    assert len(whole) == 1 and whole["cmax"].iloc[0] == 16


def test_nca_table_missing_column_is_named() -> None:
    with pytest.raises(ValueError, match=r"\['conc'\]"):
        nca_table(pd.DataFrame({"time": [0.0]}), "time", "conc")
