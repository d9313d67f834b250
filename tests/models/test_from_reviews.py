"""Training from reviewers' corrections, end to end on an embedded run's output folder.

correct (``save_annotation``, the QC web's code path) → ``overnight train cells|pnp
--from-reviews OUT --init MODEL --publish REGISTRY`` (tiny models, a few steps) → the registry
holds the new version → analyse again with ``cells@<version>`` → the result's provenance
names it. Plus the pure pieces: spots to particles, the split, the synthetic share.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fixtures_reviews import save_truth_as_correction
from overnight.cli.main import cli
from overnight.jobs.retrain import read_all_corrections
from overnight.jobs.retrain_models import model_overrides
from overnight.models.card import CARD_FILE
from overnight.models.config import load_config
from overnight.models.corrections import CorrectedField, ReviewSource, particles_from_spots
from overnight.models.registry import list_versions
from overnight.models.retrain import REVIEWS_FILE, n_synthetic, review_split
from overnight.pipeline.batch import BatchOptions, ImageAnalyser
from overnight.results.layout import DatasetResults
from overnight.storage import open_store

REVIEWER = "ada"


def test_particles_from_spots_take_the_brightest_slice_and_repeat_pairs() -> None:
    volume = np.zeros((4, 10, 10), np.float32)
    volume[1, 2, 2] = 50.0
    volume[3, 7, 6] = 50.0
    labels = np.zeros((10, 10), np.uint32)
    labels[5:9, 4:9] = 3
    spots = np.array([[2.0, 2.0, 1.0], [7.0, 6.0, 2.0]])
    rows = particles_from_spots(volume, labels, spots)
    assert rows["z"].tolist() == [1.0, 3.0, 3.0]
    assert rows["cell_id"].tolist() == [0, 3, 3]
    assert particles_from_spots(volume, labels, np.zeros((0, 3))).empty


def test_synthetic_share_and_split_keep_validation_corrected_only() -> None:
    assert n_synthetic(4, 0.5) == 4 and n_synthetic(4, 0.0) == 0
    with pytest.raises(ValueError, match="share"):
        n_synthetic(4, 1.0)
    fields = [
        CorrectedField(
            field=_training_field(f"img{i}"),
            source=ReviewSource("ds", f"img{i}", 1, REVIEWER, "2026-12-07T06:00:00+00:00"),
            digest=str(i),
        )
        for i in range(5)
    ]
    synthetic = [_training_field("synthetic-000")]
    split, train, val = review_split(fields, 0.2, seed=3, synthetic=synthetic)
    assert len(val) == 1 and len(train) == 4
    assert {f.image_id for f in split.val} == {val[0].source.image_id}
    assert "synthetic-000" in {f.image_id for f in split.train}
    assert not {f.image_id for f in split.val} & {f.image_id for f in split.train}


def _training_field(image_id: str):  # noqa: ANN202 - a TrainingField
    from overnight.models.datasets import TrainingField

    return TrainingField(
        image_id, np.zeros((1, 2, 8, 8)), np.zeros((8, 8), np.uint32), None, None, 0.2
    )


@pytest.fixture(scope="module")
def reviewed_run(
    tiny_dataset: Path,
    tiny_cell_model_dir: Path,
    tiny_pnp_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """An embedded run over the tiny fields with the tiny models; every field corrected."""
    out = tmp_path_factory.mktemp("reviewed-run")
    _analyse(tiny_dataset, out, str(tiny_cell_model_dir), str(tiny_pnp_model_dir))
    store = open_store(str(out))
    results = DatasetResults(store)
    for truth_dir in sorted((tiny_dataset / "truth").iterdir()):
        save_truth_as_correction(store, results, truth_dir.name, truth_dir, REVIEWER)
    return out


def _analyse(images: Path, out: Path, cells: str, pnp: str) -> None:
    overrides = {
        step: {"model": cells}
        for step in ("locate_cells_ae", "cell_boundaries_ae", "classify_cells_ae")
    }
    overrides["detect_pnps_unet"] = {"model": pnp}
    analyser = ImageAnalyser(
        BatchOptions(pipeline="cytometry", out_url=str(out), step_overrides=overrides)
    )
    for path in sorted((images / "images").glob("*.tif")):
        assert analyser.analyse(path).status == "done"


def test_corrections_are_read_with_their_provenance(reviewed_run: Path) -> None:
    fields = read_all_corrections([str(reviewed_run)])
    assert len(fields) == 3
    first = fields[0]
    assert first.source.author == REVIEWER and first.source.version == 1
    assert first.source.model_versions  # which models the reviewer corrected
    assert first.field.image.ndim == 4 and first.field.labels.shape == first.field.image.shape[-2:]
    assert first.field.pnps is not None and len(first.field.pnps) > 0


def test_train_from_reviews_publish_and_reanalyse_names_the_version(
    reviewed_run: Path,
    tiny_dataset: Path,
    tiny_cell_model_dir: Path,
    tiny_pnp_model_dir: Path,
    registry: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "cells-reviewed"
    args = ["train", "cells", "--from-reviews", str(reviewed_run), "--init"]
    args += [str(tiny_cell_model_dir), "--out", str(out), "--epochs", "1", "--steps", "2"]
    args += ["--synthetic-share", "0.25", "--publish", registry.as_uri()]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    card = json.loads((out / CARD_FILE).read_text())
    assert card["epochs_run"] == 1 and "reviews of" in card["training_data"]
    assert sum(f"by {REVIEWER}" in line for line in card["provenance"]) == 3
    assert sum("post-processing kept: " in line for line in card["provenance"]) == 1
    config = json.loads((out / "config.json").read_text())
    assert card["hyper_parameters"]["seed_h_px"] == config["seed_h_px"]
    assert "val_corrected_f1_postprocess_after" in card["metrics"]
    reviews = json.loads((out / REVIEWS_FILE).read_text())
    assert reviews["datasets"] == [str(reviewed_run.resolve())]
    assert reviews["reviewers"] == [REVIEWER] and reviews["synthetic_fields"] == 1
    assert reviews["synthetic_val_fields"] == 1
    assert {i["split"] for i in reviews["images"]} == {"train", "val"}
    assert all(i["annotation_version"] == 1 for i in reviews["images"])

    versions = list_versions(open_store(registry.as_uri()), "cells")
    assert len(versions) == 1 and f"published {versions[0].reference}" in result.output
    again = tmp_path / "again"
    overrides = model_overrides("cytometry", {"cells": versions[0].version})
    analyser = ImageAnalyser(
        BatchOptions(
            pipeline="cytometry",
            out_url=str(again),
            step_overrides={**overrides, "detect_pnps_unet": {"model": str(tiny_pnp_model_dir)}},
        )
    )
    image = sorted((tiny_dataset / "images").glob("*.tif"))[0]
    assert analyser.analyse(image).status == "done"
    record = json.loads(next(again.glob("*/result.json")).read_text())
    assert record["versions"]["locate_cells_ae.model"] == versions[0].reference
    before = json.loads(next(reviewed_run.glob("*/result.json")).read_text())
    assert before["versions"]["locate_cells_ae.model"] != versions[0].reference


def test_pnp_trains_from_reviews(
    reviewed_run: Path, tiny_pnp_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pnp-reviewed"
    args = ["train", "pnp", "--from-reviews", str(reviewed_run), "--init"]
    args += [str(tiny_pnp_model_dir), "--out", str(out), "--epochs", "1", "--steps", "2"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    card = json.loads((out / CARD_FILE).read_text())
    assert card["kind"] == "pnp" and "val_detection_f1" in card["metrics"]


def test_a_dataset_id_needs_a_store_and_nothing_corrected_is_refused(tmp_path: Path) -> None:
    args = ["train", "cells", "--from-reviews", "plate-7-abc", "--out", str(tmp_path / "m")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0 and "--store" in result.output
    empty = tmp_path / "empty-run"
    empty.mkdir()
    result = CliRunner().invoke(
        cli, ["train", "cells", "--from-reviews", str(empty), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code != 0 and "no corrected images" in result.output


def test_zero_epochs_from_reviews_keeps_the_network_and_refits_the_rest(
    reviewed_run: Path, tiny_cell_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cells-types-only"
    args = ["train", "cells", "--from-reviews", str(reviewed_run), "--init"]
    args += [str(tiny_cell_model_dir), "--out", str(out), "--epochs", "0"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    card = json.loads((out / CARD_FILE).read_text())
    assert card["epochs_run"] == 0 and card["training_seconds"] == 0.0
    assert (out / "classifier.json").is_file()
    assert load_config(out).train.epochs >= 1  # the written model loads again


def _blob_probabilities(foreground: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``(Y, X, 3)`` and true labels of square cells, one per foreground level."""
    probs = np.zeros((40, 24 * len(foreground), 3))
    probs[..., 0] = 1.0
    truth = np.zeros(probs.shape[:2], np.uint32)
    for index, level in enumerate(foreground):
        cell = np.s_[8:24, 24 * index + 4 : 24 * index + 20]
        probs[cell] = (1.0 - level, level, 0.0)
        truth[cell] = index + 1
    return probs, truth


def test_postprocessing_refit_keeps_dim_true_cells_and_records_the_change() -> None:
    from overnight.models.cells_postprocess import cell_f1, refit_postprocessing
    from overnight.models.config import CellModelConfig

    config = CellModelConfig(seed_h_px=3.0)
    probs, truth = _blob_probabilities((0.95, 0.72))  # the shipped 0.78 drops the dim cell
    assert cell_f1([probs], [truth], config) == pytest.approx(2 / 3)
    kept, not_enough = refit_postprocessing(config, [probs], [truth])  # 2 cells < 30
    assert kept == config and not_enough.kept and "fewer than the 30" in not_enough.line()
    fitted, fit = refit_postprocessing(config, [probs], [truth], min_cells=2)
    assert fitted.min_mean_foreground <= 0.7 and fit.f1_before == pytest.approx(2 / 3)
    assert fit.f1_after == 1.0 == cell_f1([probs], [truth], fitted)
    assert "min_mean_foreground=0.6" in fit.line() or "min_mean_foreground=0.7" in fit.line()
    bright, bright_truth = _blob_probabilities((0.95, 0.9))  # already right: nothing moves
    same, tie = refit_postprocessing(config, [bright], [bright_truth], min_cells=2)
    assert same == config and tie.f1_before == tie.f1_after == 1.0 and not tie.kept
