"""The skin-PK pipeline with known labels: drug measurement, background, NCA, failures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from overnight.analysis.nca import NCA_COLUMNS
from overnight.analysis.profiles import PROFILE_COLUMNS, nca_for_profiles
from overnight.errors import ConfigError, InvalidImageError
from overnight.models.skin import SkinModel, skin_config
from overnight.skin.pipeline import analyse_series, analyse_timepoint, load_pk_params, pk_analysis
from overnight.skin.series import PlaneSource, SkinSeries, Timepoint, find_series

#: A model stand-in for runs that are given the labels: only its compartment names are used.
NAMES_ONLY = SkinModel(skin_config(), network=None, predict=None, version="truth")


def _truth_labels(root: Path):  # type: ignore[no-untyped-def]
    def labels(timepoint: Timepoint) -> np.ndarray:
        return tifffile.imread(root / "truth" / timepoint.image_id / "labels.tif")

    return labels


def _raw(time: float, a: float, b: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            (time, 0.0, "a", a, 10),
            (time, 20.0, "a", a + 2, 30),
            (time, 0.0, "b", b, 5),
            (time, 20.0, "b", float("nan"), 0),
        ],
        columns=list(PROFILE_COLUMNS),
    )


def test_pk_analysis_subtracts_the_pre_dose_level_and_calibrates() -> None:
    raws = [
        _raw(0, 100, 100),
        _raw(10, 140, 110),
        _raw(30, 120, 104),
        _raw(60, 110, 102),
        _raw(90, 105, 101),
    ]
    levels = [(10.0, 100.5), (0.0, 100.0), (30.0, 101.0), (60.0, 99.0), (90.0, 100.0)]
    pk = pk_analysis(raws, levels, calibration=0.5)
    assert pk.background_adu == 100.0 and not pk.warnings  # from t = 0, whatever the order
    first = pk.profiles[(pk.profiles["time"] == 10) & (pk.profiles["compartment"] == "a")]
    assert first["signal"].tolist() == [20.0, 21.0]  # (140 − 100)·0.5, (142 − 100)·0.5
    assert list(pk.nca.columns) == ["compartment", *NCA_COLUMNS]
    a = pk.nca.set_index("compartment").loc["a"]
    # pooled over depth by pixels: (20·10 + 21·30) / 40 = 20.75 at 10 min
    assert (a["tmax"], a["cmax"]) == (10.0, pytest.approx(20.75))
    # per depth: b is absent at 20 µm, so it has one row; a has two
    assert sorted(map(tuple, pk.nca_depth[["compartment", "depth"]].values.tolist())) == [
        ("a", 0.0),
        ("a", 20.0),
        ("b", 0.0),
    ]


def test_pk_analysis_warns_when_the_first_stack_is_not_pre_dose() -> None:
    pk = pk_analysis([_raw(5, 120, 110), _raw(20, 110, 105)], [(5.0, 103.0), (20.0, 101.0)])
    assert pk.background_adu == 103.0
    assert "not pre-dose" in pk.warnings[0]
    given = pk_analysis([_raw(5, 120, 110)], [(5.0, 103.0)], background_adu=100.0)
    assert given.background_adu == 100.0 and not given.warnings


def test_drug_means_with_true_labels_match_the_generator(tiny_series: Path) -> None:
    series = find_series(tiny_series)
    timepoint = series.timepoints[2]
    labels = _truth_labels(tiny_series)(timepoint)
    result = analyse_timepoint(timepoint, NAMES_ONLY, labels)
    assert result.reused_labels and result.labels is labels
    truth = pd.read_csv(tiny_series / "truth" / "profiles.csv")
    truth = truth[truth["time"] == timepoint.time_min]
    measured = result.raw_profiles[result.raw_profiles["n_px"] > 0].merge(
        truth, on=["time", "depth", "compartment"], suffixes=("", "_true")
    )
    assert len(measured) == len(truth) > 0
    assert (measured["n_px"] == measured["n_px_true"]).all()
    # raw means sit on the 100 ADU detector offset; noise averages out over the pixels
    error = measured["signal"] - 100.0 - measured["signal_true"]
    assert np.all(np.abs(error) < 3.0 + 0.02 * measured["signal_true"])
    assert result.drug_level_adu > 110.0  # drug on top of the 100 ADU offset: not pre-dose


def test_series_with_true_labels_recovers_the_true_nca(tiny_series: Path) -> None:
    series = find_series(tiny_series)
    seen: list[str] = []
    result = analyse_series(
        series,
        NAMES_ONLY,
        stored_labels=_truth_labels(tiny_series),
        on_result=lambda r: seen.append(r.timepoint.image_id),
    )
    assert seen == [tp.image_id for tp in series.timepoints] and not result.failures
    assert result.analysis.background_adu == pytest.approx(100.0, abs=0.5)
    truth = nca_for_profiles(pd.read_csv(tiny_series / "truth" / "profiles.csv")).set_index(
        "compartment"
    )
    measured = result.analysis.nca.set_index("compartment")
    for name in truth.index:
        assert measured.loc[name, "tmax"] == truth.loc[name, "tmax"], name
        assert measured.loc[name, "cmax"] == pytest.approx(truth.loc[name, "cmax"], rel=0.05), name
        assert measured.loc[name, "auc_last"] == pytest.approx(
            truth.loc[name, "auc_last"], rel=0.05
        )


def test_a_bad_timepoint_fails_alone(tiny_series: Path, tmp_path: Path) -> None:
    good = find_series(tiny_series)
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00 truncated")
    bad = Timepoint("broken", 500.0, (0.0,), (PlaneSource(broken, 0),))
    series = SkinSeries((*good.timepoints, bad))
    # the broken file fails when read, before any segmentation is needed
    result = analyse_series(series, NAMES_ONLY, stored_labels=_labels_or_none(tiny_series))
    assert len(result.analysed) == len(good.timepoints)
    (failure,) = result.failures
    assert failure.image_id == "broken" and failure.sources == (str(broken),)
    assert "broken.tif" in failure.reason
    assert 500.0 not in set(result.analysis.profiles["time"])


def _labels_or_none(root: Path):  # type: ignore[no-untyped-def]
    truth = _truth_labels(root)

    def labels(timepoint: Timepoint) -> np.ndarray | None:
        return truth(timepoint) if timepoint.image_id != "broken" else None

    return labels


def test_stored_labels_of_the_wrong_shape_are_refused(tiny_series: Path) -> None:
    timepoint = find_series(tiny_series).timepoints[0]
    with pytest.raises(InvalidImageError, match="do not fit"):
        analyse_timepoint(timepoint, NAMES_ONLY, np.zeros((1, 5, 5), np.uint8))
    labels = _truth_labels(tiny_series)(timepoint)
    assert math.isfinite(analyse_timepoint(timepoint, NAMES_ONLY, labels).drug_level_adu)


def test_pipeline_file_parameters(tmp_path: Path) -> None:
    builtin = load_pk_params()
    assert (builtin.model, builtin.auc_method, builtin.calibration) == (None, "linlog", 1.0)
    custom = tmp_path / "pk.yaml"
    custom.write_text(
        "name: skin-pk\nsteps:\n"
        "  - step: drug_profiles\n    params: {calibration: 0.02, unit: mM}\n"
        "  - step: nca\n    params: {auc_method: linear}\n"
    )
    params = load_pk_params(custom)
    assert (params.calibration, params.unit, params.auc_method) == (0.02, "mM", "linear")
    custom.write_text("name: skin-pk\nsteps:\n  - step: nca\n    params: {auc_methd: linear}\n")
    with pytest.raises(ConfigError, match="auc_methd"):
        load_pk_params(custom)
