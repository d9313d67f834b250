"""``overnight pk nca`` through click's CliRunner (the whole CLI, as a user calls it)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from overnight.cli.main import cli

LN2 = math.log(2.0)


@pytest.fixture
def profiles_csv(tmp_path: Path) -> Path:
    # compartment "a": 0, 0, 16, 8, 4, 2 at t = 0..5 (lambda_z = ln 2, linear AUC 29)
    # compartment "b": a single sample (NaN everywhere but cmax/tmax/clast/tlast)
    rows = [("a", t, c) for t, c in zip(range(6), [0, 0, 16, 8, 4, 2], strict=True)]
    rows.append(("b", 10, 3.0))
    path = tmp_path / "profiles.csv"
    pd.DataFrame(rows, columns=["compartment", "t_min", "signal"]).to_csv(path, index=False)
    return path


def test_pk_nca_writes_one_row_per_group(profiles_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "nca.csv"
    result = CliRunner().invoke(
        cli,
        [
            "pk", "nca", str(profiles_csv), "--time-col", "t_min", "--conc-col", "signal",
            "--group-col", "compartment", "--auc-method", "linear", "--out", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 profile(s)" in result.output and "1 without lambda_z" in result.output
    table = pd.read_csv(out)
    assert table["compartment"].tolist() == ["a", "b"]
    a = table.iloc[0]
    assert a["auc_last"] == pytest.approx(29.0)
    assert a["lambda_z"] == pytest.approx(LN2)
    assert "one time point" in table.iloc[1]["reason"]


def test_pk_nca_names_a_missing_column(profiles_csv: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["pk", "nca", str(profiles_csv), "--time-col", "time", "--conc-col", "signal",
         "--out", str(tmp_path / "x.csv")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "no column(s) time" in result.output and "t_min" in result.output


def test_pk_nca_help_explains_the_columns() -> None:
    result = CliRunner().invoke(cli, ["pk", "nca", "--help"])
    assert result.exit_code == 0
    for word in ("--time-col", "--group-col", "linlog", "auc_inf_obs", "adjusted R"):
        assert word in result.output
