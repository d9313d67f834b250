from __future__ import annotations

import json
import sys
import types

import pandas as pd
from click.testing import CliRunner

from overnight.cli.main import cli


def test_synth_cytometry_writes_images_and_truth(tmp_path):
    result = CliRunner().invoke(
        cli, ["synth", "cytometry", str(tmp_path), "--n", "2", "--seed", "3", "--size", "256"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 2 fields" in result.output
    images = sorted((tmp_path / "images").glob("*.tif"))
    assert len(images) == 2
    for image in images:
        truth = tmp_path / "truth" / image.stem
        assert {p.name for p in truth.iterdir()} == {
            "labels.tif",
            "cells.csv",
            "pnps.csv",
            "params.json",
        }


def test_synth_cytometry_rejects_tiny_fields(tmp_path):
    result = CliRunner().invoke(cli, ["synth", "cytometry", str(tmp_path), "--size", "16"])
    assert result.exit_code == 2 and "x>=128" in result.output


def test_synth_skin_says_when_the_generator_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "overnight.synth.skin", None)  # import fails
    result = CliRunner().invoke(cli, ["synth", "skin", str(tmp_path)])
    assert result.exit_code == 1
    assert "skin generator (overnight.synth.skin) is not in this installation" in result.output


def test_synth_skin_passes_its_options(tmp_path, monkeypatch):
    calls = []
    stand_in = types.ModuleType("overnight.synth.skin")

    def write_skin_dataset(out_dir, seed, n_timepoints=None):
        calls.append((out_dir, seed, n_timepoints))

    stand_in.write_skin_dataset = write_skin_dataset
    monkeypatch.setitem(sys.modules, "overnight.synth.skin", stand_in)
    runner = CliRunner()
    result = runner.invoke(
        cli, ["synth", "skin", str(tmp_path), "--seed", "4", "--n-timepoints", "6"]
    )
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path, 4, 6)]
    result = runner.invoke(cli, ["synth", "skin", str(tmp_path), "--n-depths", "3"])
    assert result.exit_code == 1 and "does not support --n-depths" in result.output


def test_synth_cytometry_takes_ranges_and_cell_types_from_a_file(tmp_path):
    ranges = tmp_path / "ranges.yaml"
    ranges.write_text(
        "snr: [8, 8]\n"
        "cell_types:\n"
        "  - {name: neutrophil, diameter_px: [40, 50], fraction: 1}\n"
        "  - {name: lymphocyte, diameter_px: [30, 45], fraction: 1}\n"
    )
    out = tmp_path / "out"
    args = ["synth", "cytometry", str(out), "--n", "1", "--size", "256", "--ranges", str(ranges)]
    result = CliRunner().invoke(cli, [*args, "--cell-type", "neutrophil"])
    assert result.exit_code == 0, result.output
    (truth,) = (out / "truth").iterdir()
    assert json.loads((truth / "params.json").read_text())["snr"] == 8
    assert set(pd.read_csv(truth / "cells.csv")["cell_type"]) == {"neutrophil"}

    ranges.write_text("snr: [9, 3]\n")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "snr: low 9.0 is above high 3.0" in result.output
    result = CliRunner().invoke(cli, [*args[:-2], "--cell-type", "basophil"])
    assert result.exit_code == 1 and "unknown cell type 'basophil'" in result.output
