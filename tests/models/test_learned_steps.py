"""The learned steps in a pipeline: models named by folder, classical interfaces kept."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

import numpy as np
import yaml

from overnight.models.datasets import read_dataset
from overnight.pipeline.definition import load_pipeline
from overnight.pipeline.registry import available_steps
from overnight.pipeline.runner import PreparedPipeline
from overnight.steps.classify import CellTypes
from overnight.steps.pnp import Spots


def test_learned_steps_are_registered() -> None:
    names = set(available_steps())
    assert {
        "locate_cells_ae",
        "cell_boundaries_ae",
        "classify_cells_ae",
        "detect_pnps_unet",
    } <= names


def test_default_pipeline_keeps_the_stage_split_of_the_classical_one() -> None:
    learned, classical = load_pipeline("cytometry"), load_pipeline("cytometry-classical")

    def split(pipeline):  # the stage sequence, runs of one stage collapsed
        return [stages for stages, _ in groupby(b.stages for b in pipeline.steps)]

    assert split(learned) == split(classical)
    assert "detect_pnps_unet" in [b.spec.name for b in learned.steps]


def test_pipeline_with_learned_steps_gives_tables(
    tiny_dataset: Path, tiny_cell_model_dir: Path, tiny_pnp_model_dir: Path, tmp_path: Path
) -> None:
    from overnight.imaging.reader import read_stack

    definition = yaml.safe_load(
        (Path(__file__).parents[2] / "shared/overnight/pipeline/builtin/cytometry.yaml").read_text()
    )
    for entry in definition["steps"]:
        if entry["step"] in ("locate_cells_ae", "cell_boundaries_ae", "classify_cells_ae"):
            entry["params"]["model"] = str(tiny_cell_model_dir)
        if entry["step"] == "detect_pnps_unet":
            entry["params"]["model"] = str(tiny_pnp_model_dir)
    path = tmp_path / "learned.yaml"
    path.write_text(yaml.safe_dump(definition))
    prepared = PreparedPipeline(load_pipeline(str(path)))
    image_path = sorted((tiny_dataset / "images").glob("*.tif"))[0]
    run = prepared.run({"stack": read_stack(image_path)})
    labels = run.values["cell_labels"]
    assert labels.shape == read_dataset(tiny_dataset, [image_path])[0].labels.shape
    assert isinstance(run.values["cell_types"], CellTypes) and isinstance(
        run.values["spots"], Spots
    )
    cells = run.values["cells_table"]
    assert len(cells) == len(np.unique(labels[labels > 0]))
    assert set(cells["cell_type"]) <= {"lymphocyte", "monocyte"}
    assert any(k.endswith(".model") for k in prepared.versions())
    # what ran each network is recorded beside its model (ONNX Runtime here: no GPU)
    inference = {k: v for k, v in prepared.versions().items() if k.endswith(".inference")}
    assert inference["locate_cells_ae.inference"].startswith(("onnxruntime", "tensorflow"))
    assert inference["detect_pnps_unet.inference"].startswith(("onnxruntime", "tensorflow"))
