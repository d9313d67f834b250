"""Train each model a few steps on a tiny synthetic set, save, reload, predict the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from overnight.models.card import CARD_FILE
from overnight.models.cells import CellModel
from overnight.models.config import CellModelConfig, PnpModelConfig, load_config
from overnight.models.datasets import read_dataset
from overnight.models.loading import WEIGHTS_FILE, resolve_model_dir
from overnight.models.pnp import PnpModel
from overnight.models.pnp_training import train_pnp


@pytest.fixture()
def cell_model_dir(tiny_cell_model_dir: Path) -> Path:
    return tiny_cell_model_dir


def test_cell_model_is_saved_with_config_card_and_types(cell_model_dir: Path) -> None:
    assert isinstance(load_config(cell_model_dir), CellModelConfig)
    assert (cell_model_dir / WEIGHTS_FILE).is_file()
    card = json.loads((cell_model_dir / CARD_FILE).read_text())
    assert card["kind"] == "cells" and len(card["training_data_sha256"]) == 64
    assert {"val_f1_iou50", "val_mean_iou_matched"} <= set(card["metrics"])
    assert card["libraries"]["keras"]
    assert CellModel.load(cell_model_dir).classifier is not None


def test_reloaded_cell_model_predicts_the_same(cell_model_dir: Path, tiny_dataset: Path) -> None:
    field = read_dataset(tiny_dataset)[0]
    volume = field.image[:, 0].astype(np.float32)
    first, second = (
        CellModel.load(cell_model_dir),
        CellModel.load(resolve_model_dir(str(cell_model_dir), "cells")),
    )
    a, b = first.segment(volume), second.segment(volume)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
    np.testing.assert_array_equal(a.labels, b.labels)
    ids, names, confidence = first.classify(a.labels, a.features, 0.2)
    assert len(ids) == len(names) == len(confidence) == a.labels.max()
    assert set(names) <= {"lymphocyte", "monocyte"}


def test_a_mixed_precision_run_saves_float32_weights_that_reload(
    tiny_dataset: Path, tmp_path: Path, tiny_cell_config: CellModelConfig
) -> None:
    from overnight.models.cells_training import train_cells

    config = tiny_cell_config.model_copy(
        update={"train": tiny_cell_config.train.model_copy(update={"mixed_precision": True})}
    )
    train_cells(tiny_dataset, tmp_path, config, verbose=0)
    model = CellModel.load(tmp_path)
    assert model.config.train.mixed_precision
    assert all(layer.compute_dtype == "float32" for layer in model.network.layers)
    volume = read_dataset(tiny_dataset)[0].image[:, 0].astype(np.float32)
    np.testing.assert_allclose(model.segment(volume).probabilities.sum(axis=-1), 1.0, atol=1e-5)


def test_particle_model_trains_saves_and_reloads(
    tiny_dataset: Path, tmp_path: Path, tiny_pnp_config: PnpModelConfig
) -> None:
    card = train_pnp(tiny_dataset, tmp_path, tiny_pnp_config, verbose=0)
    assert card.kind == "pnp" and card.flops_per_field and card.flops_per_field > 0
    assert json.loads((tmp_path / CARD_FILE).read_text())["metrics"].keys() >= {"val_detection_f1"}
    field = read_dataset(tiny_dataset)[0]
    volume = field.image[:, 1].astype(np.float32)
    model = PnpModel.load(tmp_path)
    np.testing.assert_allclose(
        PnpModel.load(tmp_path).density(volume), model.density(volume), atol=1e-6
    )
    spots = model.detect(volume)
    assert len(spots.z) == len(spots.multiplicity)
    # two training steps find too few basins to fit a multiplicity model: integrals count
    assert model.multiplicity is None and not (tmp_path / "multiplicity.json").exists()


def test_zero_epochs_without_weights_is_refused(
    tiny_dataset: Path, tmp_path: Path, tiny_pnp_config: PnpModelConfig
) -> None:
    from overnight.errors import ConfigError

    with pytest.raises(ConfigError, match="needs --init"):
        train_pnp(tiny_dataset, tmp_path, tiny_pnp_config, epochs=0, verbose=0)


def test_a_missing_model_is_reported_by_name(tmp_path: Path) -> None:
    from overnight.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model_dir(str(tmp_path), "cells")


def test_zero_epochs_keeps_the_weights_and_the_card_lists_the_runs_behind_them(
    tiny_dataset: Path, tiny_pnp_model_dir: Path, tmp_path: Path, tiny_pnp_config: PnpModelConfig
) -> None:
    first = train_pnp(
        tiny_dataset,
        tmp_path / "a",
        tiny_pnp_config,
        verbose=0,
        initial_weights=tiny_pnp_model_dir / WEIGHTS_FILE,
    )
    second = train_pnp(
        tiny_dataset,
        tmp_path / "b",
        tiny_pnp_config,
        epochs=0,
        verbose=0,
        initial_weights=tmp_path / "a" / WEIGHTS_FILE,
    )
    assert second.epochs_run == 0 and "best_val_loss" not in second.metrics
    volume = read_dataset(tiny_dataset)[0].image[:, 1].astype(np.float32)
    np.testing.assert_allclose(
        PnpModel.load(tmp_path / "b").density(volume),
        PnpModel.load(tmp_path / "a").density(volume),
        atol=1e-6,
    )
    assert len(first.provenance) == 1 and first.provenance[0].startswith(tiny_pnp_model_dir.name)
    assert second.provenance[0] == first.provenance[0]
    assert second.provenance[1].startswith("a: 1 epochs")


def test_zero_epochs_refits_only_the_cell_types(
    tiny_dataset: Path, tiny_cell_model_dir: Path, tmp_path: Path, tiny_cell_config: CellModelConfig
) -> None:
    from overnight.models.cells_training import train_cells

    card = train_cells(
        tiny_dataset,
        tmp_path,
        tiny_cell_config,
        epochs=0,
        verbose=0,
        initial_weights=tiny_cell_model_dir / WEIGHTS_FILE,
    )
    assert card.epochs_run == 0 and "best_val_loss" not in card.metrics
    volume = read_dataset(tiny_dataset)[0].image[:, 0].astype(np.float32)
    np.testing.assert_allclose(
        CellModel.load(tmp_path).segment(volume).probabilities,
        CellModel.load(tiny_cell_model_dir).segment(volume).probabilities,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    ("flags", "native"),
    [("fpu avx2 avx512f amx_bf16 amx_tile", True), ("fpu avx512_bf16", True), ("fpu avx2", False)],
)
def test_bfloat16_is_used_only_where_the_cpu_has_it(
    tmp_path: Path, flags: str, native: bool
) -> None:
    from overnight.models.training import native_bfloat16

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert native_bfloat16(cpuinfo) is native
    assert native_bfloat16(tmp_path / "missing") is False
