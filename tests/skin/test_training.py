"""Training the skin model from a folder in the synthetic layout (images/ + truth/)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from overnight.errors import ConfigError
from overnight.models.config import TrainConfig, UNetConfig
from overnight.models.skin import load_skin_model, skin_config, train_skin
from overnight.models.skin_data import PlaneSet, skin_augmentation, training_pairs
from overnight.models.training import augment
from overnight.skin.training import folder_planes

#: The training recipe (structure + depth channels) at a tiny size.
TINY = skin_config().model_copy(
    update={
        "unet": UNetConfig.model_validate(
            {"ndim": 2, "in_channels": 2, "out_channels": 6, "n_levels": 2, "base_filters": 4}
        ),
        "train": TrainConfig.model_validate(
            {
                "epochs": 1,
                "steps_per_epoch": 1,
                "batch_size": 2,
                "patch_yx_px": 32,
                "val_patches": 2,
                "patience": 1,
            }
        ),
    }
)


def test_folder_planes_pair_images_with_their_truth(tiny_series: Path) -> None:
    planes, used = folder_planes(tiny_series, TINY)
    assert len(planes.inputs) == 6 * 4 and len(used) == 2 * 6
    assert planes.inputs[0].shape == (128, 128, 2)  # 256² pooled by 2, structure + depth
    sidecar = json.loads(sorted((tiny_series / "images").glob("*.json"))[0].read_text())
    depths = [float(p[0, 0, 1]) * 150.0 for p in planes.inputs[:4]]  # the sidecar's depths
    assert depths == pytest.approx(sidecar["depths_um"], abs=1e-3)
    assert planes.labels[0].shape == (128, 128) and planes.labels[0].max() <= 5
    assert planes.ids[5].endswith(":z1")


def test_train_from_a_folder_records_its_source(tiny_series: Path, tmp_path: Path) -> None:
    out = train_skin(tiny_series, tmp_path / "m", config=TINY, time_budget_s=60)
    card = json.loads((out / "card.json").read_text())
    assert card["training_data"] == str(tiny_series) and len(card["training_data_sha256"]) == 64
    assert card["n_train_images"] + card["n_val_images"] == 24
    weights = json.loads((out / "config.json").read_text())["class_weights"]
    assert weights[0] == 0.0 and np.all(np.array(weights[1:]) > 0)


def test_unknown_training_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown training options"):
        train_skin(None, tmp_path / "m", config=TINY, n_series=1, colour="blue")


def test_class_centres_balance_compartments_across_planes() -> None:
    """A compartment in one plane of four is drawn about as often as one in every plane."""
    labels = [np.full((32, 32), 2, np.uint8) for _ in range(4)]
    labels[0][:8, :8] = 5  # adipose: one plane only
    planes = PlaneSet([np.zeros((32, 32, 1), np.float32)] * 4, labels, list("abcd"))
    pairs = training_pairs(planes, 6, seed=0)
    per_entry = [
        lab[f[:, 0], f[:, 1]] for lab, f in zip(pairs.targets, pairs.features, strict=True)
    ]
    # the loop picks an entry uniformly, then one of its centres
    share = np.mean([np.mean(centres == 5) for centres in per_entry])
    assert set(np.unique(np.concatenate(per_entry))) == {2, 5}
    assert share == pytest.approx(0.5)
    assert pairs.inputs[0].shape == (32, 32) and not pairs.channels_last


def test_init_with_epochs_0_keeps_the_weights_and_records_them(tmp_path: Path) -> None:
    first = train_skin(None, tmp_path / "a", config=TINY, n_series=1, n_val_series=1, size=64)
    again = train_skin(
        None,
        tmp_path / "b",
        epochs=0,
        config=TINY,
        n_series=1,
        n_val_series=1,
        size=64,
        init=first,
    )
    a, b = load_skin_model(first), load_skin_model(again)
    assert all(
        np.array_equal(x, y)
        for x, y in zip(a.network.get_weights(), b.network.get_weights(), strict=True)
    )
    card = json.loads((again / "card.json").read_text())
    assert card["epochs_run"] == 0 and card["initial_weights"].endswith("weights.weights.h5")
    assert card["provenance"] and "looks spec, training" in card["training_data"]
    looks = json.loads((again / "training_look.json").read_text())
    assert looks["training"]["follicle_diameter_um"] == [40.0, 120.0]
    assert looks["spec"]["follicle_diameter_um"] == [50.0, 100.0]
    assert not (first / "checkpoint.weights.h5").exists()


def test_both_channels_train_through_the_shared_loop(tmp_path: Path) -> None:
    two = skin_config((0, 1), depth_input=False).model_copy(
        update={"unet": TINY.unet.model_copy(update={"in_channels": 2}), "train": TINY.train}
    )
    out = train_skin(None, tmp_path / "m", config=two, n_series=1, n_val_series=1, size=64)
    assert load_skin_model(out).network.input_shape[-1] == 2


def test_models_layer_does_not_import_the_skin_package() -> None:
    """models/skin.py ⇄ skin/training.py was a cycle (issue 12): only skin → models remains."""
    import ast

    import overnight.models.skin as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not any(name.startswith("overnight.skin") for name in imported), imported
    import overnight.models.skin_data as data

    tree = ast.parse(Path(data.__file__).read_text())
    assert not any(
        isinstance(node, ast.ImportFrom) and (node.module or "").startswith("overnight.skin")
        for node in ast.walk(tree)
    )
    assert skin_config().train.mixed_precision  # the shared loop's bfloat16 where native


def test_depth_channel_is_jittered_as_a_depth_not_as_an_intensity() -> None:
    """The shared loop's per-channel ranges: the image gets gamma, gain and noise; the depth
    only ± depth_jitter_um, a 0.8–1.2 scale and the loop's tilt (≤ 30 % across a patch)."""
    intensity = skin_augmentation(TINY)
    rng = np.random.default_rng(0)
    image = np.stack([np.full((32, 32), 0.5), np.full((32, 32), 0.4)], axis=-1)  # 60 µm
    labels = np.zeros((32, 32), np.int32)
    seen = []
    for _ in range(200):
        out, _ = augment(rng, image.astype(np.float32), labels, intensity)
        seen.append(out[..., 1])
        assert out.shape == (32, 32, 2)
    depth_um = np.array(seen) * 150.0
    centre = depth_um[:, 15:17, 15:17].mean(axis=(1, 2))  # the tilt is ~1 at the centre
    assert 60 * 0.8 - 12 - 2 < centre.min() and centre.max() < 60 * 1.2 + 12 + 2
    assert centre.std() > 3.0  # it is jittered
    assert np.abs(np.diff(depth_um, axis=2)).max() < 2.0  # smooth (tilt only), no pixel noise
    assert skin_augmentation(skin_config(depth_input=False)).gamma == (0.6, 1.6)


def test_training_with_depth_input_records_it(tmp_path: Path) -> None:
    out = train_skin(None, tmp_path / "m", config=TINY, n_series=1, n_val_series=1, size=64)
    model = load_skin_model(out)
    assert model.config.depth_input and model.network.input_shape[-1] == 2
    card = json.loads((out / "card.json").read_text())
    assert "plane depth" in card["architecture"] and "training" in card["training_ranges"]
