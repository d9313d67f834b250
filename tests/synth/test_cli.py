from __future__ import annotations

import sys
import types

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
