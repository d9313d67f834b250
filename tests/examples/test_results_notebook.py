"""examples/results.ipynb runs top to bottom on a small generated dataset (nbclient)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from nbclient import NotebookClient

from overnight.cli.main import cli
from overnight.pipeline.batch import BatchOptions, run_batch
from overnight.synth.dataset import write_dataset
from overnight.synth.skin import write_skin_dataset

NOTEBOOK = Path(__file__).parents[2] / "examples" / "results.ipynb"
CONDITIONS = [  # drug, formulation, sample, depth_um of each field
    ("rux", "lipo", "s1", 5),
    ("rux", "lipo", "s1", 20),
    ("none", "free", "s2", 5),
    ("none", "free", "s2", 20),
]


def _cytometry(base: Path) -> Path:
    paths = write_dataset(base / "synth", len(CONDITIONS), seed=5, size=192)
    for path, (drug, formulation, sample, depth) in zip(paths, CONDITIONS, strict=True):
        fields = {"drug": drug, "formulation": formulation, "sample": sample, "depth_um": depth}
        image_id = path.name.removesuffix(".tif")
        (path.parent / f"{image_id}.meta.json").write_text(json.dumps(fields))
    out = base / "results"
    outcomes = run_batch(paths, BatchOptions(pipeline="cytometry-classical", out_url=str(out)))
    assert {o.status for o in outcomes} == {"done"}
    return out


def _skin_pk(base: Path) -> Path:
    write_skin_dataset(base / "skin", seed=3, size=64, n_depths=2, n_timepoints=4)
    out = base / "pk"
    images = str(base / "skin" / "images")
    result = CliRunner().invoke(cli, ["pk", "run", images, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.timeout(240)
def test_the_results_notebook_runs_on_a_generated_dataset(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OVERNIGHT_RESULTS", str(_cytometry(tmp_path)))
    monkeypatch.setenv("OVERNIGHT_PK_RESULTS", str(_skin_pk(tmp_path)))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "4 images" in text and "cells treated with rux" in text
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 2, "the Poisson comparison and the PK curves"
    tables = "\n".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "lipo" in tables and "cmax" in tables
