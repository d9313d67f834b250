"""The skin-compartment model: class balancing, loss, config, train a few steps, save, reload."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pytest

import overnight.models.skin as skin_module
from overnight.errors import ConfigError, ModelNotFoundError
from overnight.models.config import TrainConfig, UNetConfig
from overnight.models.loading import models_root
from overnight.models.skin import (
    SkinModelConfig,
    build_skin_model,
    class_balanced_loss,
    class_probabilities,
    class_weights,
    downsample_mean,
    iou_per_class,
    load_skin_model,
    network_input,
    save_skin_model,
    segment_stack,
    skin_config,
    train_skin,
)
from overnight.skin.training import PlaneSet, class_centres, sample_patch, stack_planes

TINY = skin_config(depth_input=False).model_copy(
    update={
        "unet": UNetConfig(ndim=2, in_channels=1, out_channels=6, n_levels=2, base_filters=4),
        "train": TrainConfig(
            epochs=1, steps_per_epoch=2, batch_size=2, patch_yx_px=32, val_patches=2, patience=1
        ),
        "tile_px": 64,
        "tile_overlap_px": 16,
    }
)


def test_doctests() -> None:
    assert doctest.testmod(skin_module, raise_on_error=False).failed == 0


def test_class_weights_favour_rare_classes_and_ignore_absent_ones() -> None:
    counts = np.array([0, 9000, 900, 90, 10])
    weights = class_weights(counts, power=0.5, max_weight=10.0)
    assert weights[0] == 0.0
    assert np.all(np.diff(weights[1:]) > 0)  # rarer → heavier
    # the mean weight of a training pixel is 1
    assert np.sum(counts * weights) / counts.sum() == pytest.approx(1.0)
    # the cap bounds the ratio of the rarest to the median class (median of 9000, 900, 90, 10 = 495)
    capped = class_weights(counts, power=1.0, max_weight=3.0)
    assert capped[4] / capped[2] == pytest.approx(3.0 / (495 / 900), rel=1e-5)
    assert np.allclose(class_weights(np.array([5, 5, 5]), power=0.0), 1.0)  # power 0: no balancing
    with pytest.raises(ValueError, match="no labelled pixels"):
        class_weights(np.zeros(3))


def test_loss_counts_rare_classes_and_skips_weightless_ones() -> None:
    labels = np.zeros((1, 4, 4), np.int32)
    labels[0, 0, 0] = 1  # one pixel of a rare class
    right = np.zeros((1, 4, 4, 2), np.float32)
    right[..., 0] = 1.0
    right[0, 0, 0] = (0.0, 1.0)
    wrong_rare = right.copy()
    wrong_rare[0, 0, 0] = (1.0, 0.0)  # the rare pixel missed
    balanced = class_balanced_loss(np.array([1.0, 15.0]), dice_weight=0.5)
    plain = class_balanced_loss(np.array([1.0, 1.0]), dice_weight=0.0)
    assert float(balanced(labels, right)) < 1e-3
    # missing 1 pixel of 16 costs far more with the rare class weighted and Dice on
    assert float(balanced(labels, wrong_rare)) > 5 * float(plain(labels, wrong_rare))
    ignore_rare = class_balanced_loss(np.array([1.0, 0.0]), dice_weight=0.5)
    assert float(ignore_rare(labels, wrong_rare)) < 0.05  # only the soft Dice of class 0 is left


def test_config_checks_its_shapes() -> None:
    with pytest.raises(ValueError, match="out_channels must be 6"):
        SkinModelConfig(unet=UNetConfig(ndim=2, out_channels=3))
    with pytest.raises(ValueError, match="in_channels"):
        SkinModelConfig(channel_indices=(0, 1))
    both = skin_config((0, 1), depth_input=False)
    assert both.unet.in_channels == 2 and both.channel_roles == ("structure", "drug")
    assert skin_config((0, 1)).unet.in_channels == 3  # the recipe adds the depth channel
    with pytest.raises(ValueError, match="depth_input"):
        SkinModelConfig(depth_input=True)  # in_channels 1: no room for the depth
    two = build_skin_model(TINY.model_copy(update={"unet": both.unet, "channel_indices": (0, 1)}))
    stack = np.random.default_rng(2).integers(100, 900, (3, 2, 32, 32)).astype(np.uint16)
    assert segment_stack(two, stack).shape == (3, 32, 32)
    with pytest.raises(ValueError, match="channels"):
        segment_stack(two, stack[:, :1])


def test_segment_stack_keeps_odd_shapes() -> None:
    model = build_skin_model(TINY)
    stack = np.random.default_rng(0).integers(100, 2000, (2, 2, 37, 50)).astype(np.uint16)
    labels = segment_stack(model, stack)
    assert labels.shape == (2, 37, 50) and labels.dtype == np.uint8
    probs = class_probabilities(model, stack)
    assert probs.shape == (2, 6, 37, 50)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert downsample_mean(np.arange(6.0).reshape(1, 2, 3), 2).tolist() == [[[2.0, 3.5]]]


def test_class_centred_patches_reach_rare_classes() -> None:
    labels = np.zeros((1, 64, 64), np.uint8)
    labels[0, 60:, 60:] = 3  # 16 px of class 3 in one corner
    labels[0, :60] = 1
    stack = np.ones((1, 2, 64, 64), np.uint16)
    planes = stack_planes(stack, labels, TINY.model_copy(update={"downsample": 1}), "a")
    config = TINY.model_copy(update={"class_centred_fraction": 1.0})
    assert [len(c) for c in class_centres(planes, 6)] == [1, 1, 0, 1, 0, 0]
    rng = np.random.default_rng(0)
    hits = [3 in sample_patch(rng, planes, class_centres(planes, 6), config)[1] for _ in range(60)]
    assert sum(hits) >= 15  # one class of three drawn uniformly; it occupies 0.4 % of the plane
    assert isinstance(planes, PlaneSet) and planes.labels[0].shape == (64, 64)


def test_train_save_reload_predicts_the_same(tmp_path: Path) -> None:
    out = train_skin(
        None, tmp_path / "skin", seed=3, config=TINY, n_series=1, n_val_series=1, size=64
    )
    card = json.loads((out / "card.json").read_text())
    assert card["kind"] == "skin" and card["epochs_run"] == 1
    assert "val_mean_iou_compartments" in card["metrics"]
    config = json.loads((out / "config.json").read_text())
    assert len(config["class_weights"]) == 6 and config["class_weights"][0] == 0.0
    first = load_skin_model(out)
    stack = np.random.default_rng(1).integers(100, 2000, (2, 2, 48, 48)).astype(np.uint16)
    again = load_skin_model(save_skin_model(first, tmp_path / "copy"))
    assert np.allclose(
        class_probabilities(first, stack), class_probabilities(again, stack), atol=1e-6
    )
    assert first.version.startswith("skin@") and again.version.startswith("copy@")


#: A depth-reading tiny model: structure channel + depth channel.
TINY_DEPTH = TINY.model_copy(
    update={"unet": TINY.unet.model_copy(update={"in_channels": 2}), "depth_input": True}
)


def test_depth_model_without_depths_is_a_clear_error() -> None:
    model = build_skin_model(TINY_DEPTH)
    stack = np.random.default_rng(4).integers(100, 900, (3, 2, 32, 32)).astype(np.uint16)
    with pytest.raises(ConfigError, match="depths_um"):
        class_probabilities(model, stack)
    with pytest.raises(ConfigError, match="need 3 finite plane depths"):
        segment_stack(model, stack, [0.0, 10.0])
    with pytest.raises(ConfigError, match="need 3 finite"):
        segment_stack(model, stack, [0.0, float("nan"), 20.0])
    assert segment_stack(model, stack, [0.0, 30.0, 90.0]).shape == (3, 32, 32)


def test_depths_change_the_input_and_the_output() -> None:
    stack = np.random.default_rng(5).integers(100, 900, (2, 2, 32, 32)).astype(np.uint16)
    x = network_input(stack, TINY_DEPTH, (15.0, 120.0))
    assert x.shape == (2, 16, 16, 2)
    assert np.allclose(x[0, ..., 1], 0.1) and np.allclose(x[1, ..., 1], 0.8)  # depth / 150 µm
    # the image channel is what a depth-less model sees
    assert np.array_equal(x[..., :1], network_input(stack, TINY))
    assert np.array_equal(network_input(stack, TINY, (1.0, 2.0)), network_input(stack, TINY))
    model = build_skin_model(TINY_DEPTH)
    shallow = class_probabilities(model, stack, (0.0, 0.0))
    deep = class_probabilities(model, stack, (150.0, 150.0))
    assert not np.allclose(shallow, deep, atol=1e-4)


def test_a_config_from_before_depth_input_loads_without_it(tmp_path: Path) -> None:
    """models/skin/config.json of 2026-12-07 (4 levels, no depth fields) still loads."""
    old = {
        "kind": "skin",
        "unet": {"ndim": 2, "in_channels": 1, "out_channels": 6, "n_levels": 4, "base_filters": 4},
        "channel_indices": [0],
        "class_weights": [0.0, 1.2054, 0.9102, 1.1144, 0.7933, 1.3964],
        "train": {"epochs": 50, "steps_per_epoch": 50, "batch_size": 8, "patch_yx_px": 144},
    }
    config = SkinModelConfig.model_validate(old)
    assert not config.depth_input and config.unet.n_levels == 4
    model = build_skin_model(config)
    model.network.save_weights(tmp_path / "weights.weights.h5")
    (tmp_path / "config.json").write_text(json.dumps(old))
    stack = np.random.default_rng(6).integers(100, 900, (2, 2, 32, 32)).astype(np.uint16)
    assert segment_stack(load_skin_model(tmp_path), stack).shape == (2, 32, 32)


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="config.json"):
        load_skin_model(tmp_path)
    (tmp_path / "config.json").write_text('{"kind": "cells"}')
    with pytest.raises(ModelNotFoundError, match="not a skin model"):
        load_skin_model(tmp_path)


def test_shipped_model_loads() -> None:
    model = load_skin_model(None)
    assert model.config.compartments == skin_module.COMPARTMENTS
    assert (models_root() / "skin" / "weights.weights.h5").stat().st_size < 10e6  # ≤ 10 MB
    assert iou_per_class(np.array([1, 2]), np.array([1, 2]), 3)[1:].tolist() == [1.0, 1.0]
