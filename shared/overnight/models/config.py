"""Frozen configurations of the learned models, saved as ``config.json`` beside the weights.

Every hyper-parameter of a model is a documented field here (the StarDist/CSBDeep pattern):
the config rebuilds the network before the weights are loaded, and the same values drive
training, inference and post-processing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from overnight.errors import ModelNotFoundError

CONFIG_FILE = "config.json"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UNetConfig(_Frozen):
    """A U-Net: ``n_levels`` resolutions, two 3×3(×3) convolutions per level, skip connections.

    3D networks pool only in ``YX`` (stacks have 5–12 slices), so any number of slices works;
    ``YX`` sizes must be multiples of ``2 ** (n_levels - 1)`` (tiling pads to that). With
    ``z_window_slices`` a 3D network is 2.5-D: its slices are the channels of a 2D U-Net.
    """

    ndim: Literal[2, 3] = Field(2, description="2 for YX images, 3 for ZYX volumes")
    in_channels: int = Field(1, ge=1, description="input channels (last axis)")
    out_channels: int = Field(3, ge=1, description="output channels (last axis)")
    n_levels: int = Field(3, ge=1, le=5, description="resolutions, including the full one")
    base_filters: int = Field(16, ge=2, description="filters at full resolution; doubled per level")
    head_activation: Literal["softmax", "linear", "softplus"] = Field(
        "softmax", description="softmax: class probabilities; softplus: a non-negative density"
    )
    z_window_slices: int = Field(
        0,
        ge=0,
        description="3D only. 0: 3D convolutions over any number of slices. K > 0: a 2.5-D "
        "network, a 2D U-Net over windows of exactly K slices taken as channels (in and out): "
        "4-8x fewer FLOP than 3D convolutions for 12 slices. Input/output stay (batch, Z, Y, X, C)",
    )

    @property
    def size_multiple_px(self) -> int:
        """``YX`` sizes the network accepts are multiples of this (px)."""
        return int(2 ** (self.n_levels - 1))


class TrainConfig(_Frozen):
    """How a model is trained (patches, optimiser, stopping)."""

    epochs: int = Field(30, ge=1, description="upper bound; early stopping usually ends sooner")
    steps_per_epoch: int = Field(
        60, ge=1, description="batches per epoch (patches are drawn at random)"
    )
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(2e-3, gt=0)
    patience: int = Field(
        5, ge=1, description="epochs without a better validation loss before stopping"
    )
    val_fraction: float = Field(0.15, gt=0, lt=1, description="images kept aside for validation")
    val_patches: int = Field(48, ge=1, description="fixed validation patches")
    patch_yx_px: int = Field(256, ge=16, description="patch side (px)")
    patch_z_slices: int = Field(0, ge=0, description="3D patch depth (slices); 0 = 2D")
    feature_fraction: float = Field(
        0.8, ge=0, le=1, description="share of patches centred on a feature (cell or particle)"
    )
    time_budget_s: float = Field(
        900.0, gt=0, description="training stops after the epoch that passes this"
    )
    seed: int = Field(0, description="seed of patch sampling, augmentation and initial weights")
    mixed_precision: bool = Field(
        False,
        description="train in bfloat16 mixed precision where the CPU has it natively (AMX, "
        "AVX512-BF16: ~2-3x faster), else float32; weights and inference stay float32",
    )
    split_seed: int = Field(
        0, description="seed of the train/validation split (keep it to keep the split)"
    )
    l2_sp: float = Field(
        0.0,
        ge=0,
        description="L2-SP: weight of the summed squared distance of the weights from the "
        "initial ones in the loss (fine-tuning from --init; 0 = off)",
    )


class CellModelConfig(_Frozen):
    """The cell model: background / interior / boundary per pixel, then seeded watershed.

    ``boundary_px`` is the width of the boundary class inside each mask edge; touching cells
    are separated by it, and the watershed gives the boundary back to the cells.
    """

    kind: Literal["cells"] = "cells"
    unet: UNetConfig = UNetConfig(ndim=2, in_channels=1, out_channels=3, base_filters=16)
    classes: tuple[str, ...] = ("background", "interior", "boundary")
    class_weights: tuple[float, ...] = Field(
        (1.0, 1.0, 3.0), description="loss weight per class (boundaries are rare)"
    )
    boundary_px: int = Field(2, ge=1, description="boundary class width inside each mask edge (px)")
    channel_role: str = Field("cell", description="which channel of the stack the model reads")
    channel_index: int = Field(0, ge=0, description="that channel's index in the training images")
    pixel_size_um: float | None = Field(0.2, description="pixel size of the training images (µm)")
    normalise_percentiles: tuple[float, float] = (1.0, 99.8)
    input_scale: float = Field(
        1.0,
        gt=0.1,
        le=4.0,
        description="the cell channel is resized by this factor before the network, and the "
        "watershed's pixel parameters read in the resized pixels: 0.625 for images whose cells "
        "are 1.6× the trained size (fitted by fine-tuning from reviews)",
    )
    foreground_threshold: float = Field(0.5, description="1 − p(background) above this is a cell")
    marker_threshold: float = Field(0.3, description="p(interior) above this is a cell's interior")
    min_marker_px: int = Field(20, description="smaller interior regions are dropped (px²)")
    seed_h_px: float = Field(
        6.0, gt=0, description="seeds: distance-transform maxima this high above their saddle (px)"
    )
    seed_smooth_px: float = Field(2.0, ge=0, description="Gaussian σ on the distance map (px)")
    min_mean_foreground: float = Field(
        0.78,
        ge=0,
        le=1,
        description="cells whose mean foreground probability is below this are dropped "
        "(objects the network half-sees in noise); 0 keeps every one",
    )
    min_cell_px: int = Field(60, description="smaller cells are dropped (px²)")
    cell_types: tuple[str, ...] = Field(
        ("lymphocyte", "monocyte"), description="type labels, in classifier order; () = no types"
    )
    type_network_features: bool = Field(
        False,
        description="the type classifier also reads the network's pooled features (they follow "
        "the training images' look; shape alone holds on other looks)",
    )
    tile_px: int = Field(512, description="inference tile side (px)")
    tile_overlap_px: int = Field(96, description="overlap of neighbouring tiles (px)")
    tta: bool = Field(
        False,
        description="test-time augmentation: average the network's outputs over the 8 flips "
        "and 90° rotations of the image (8× slower inference)",
    )
    train: TrainConfig = TrainConfig(
        epochs=30,
        learning_rate=1e-3,
        patience=6,
        time_budget_s=7200.0,  # a safety cap: the epochs end these runs
        mixed_precision=True,
    )


class PnpModelConfig(_Frozen):
    """The particle model: a U-Net regressing a 3D density whose integral counts particles.

    The default network is 2.5-D: a 2D U-Net over 12-slice windows taken as channels
    (``UNetConfig.z_window_slices``); older models are 3D U-Nets (``z_window_slices`` 0).

    The target is a sum of 3D Gaussians (σ ``density_sigma_*``) each integrating to
    ``density_scale``; a spot's multiplicity is its region's integral / ``density_scale``.
    Inputs are background-subtracted and divided by the field's single-particle amplitude.
    """

    kind: Literal["pnp"] = "pnp"
    unet: UNetConfig = UNetConfig(
        ndim=3,
        in_channels=1,
        out_channels=1,
        base_filters=24,  # a 16-filter one (15.5 GFLOP, not 34.1) counted worse on dim spots
        head_activation="linear",
        z_window_slices=12,
    )
    channel_role: str = Field("pnp", description="which channel of the stack the model reads")
    channel_index: int = Field(1, ge=0, description="that channel's index in the training images")
    min_z_slices: int = Field(
        8, ge=1, description="3D networks: thinner stacks are zero-padded in z to this"
    )
    pixel_size_um: float | None = Field(0.2, description="pixel size of the training images (µm)")
    density_sigma_xy_px: float = Field(1.0, gt=0, description="target blob σ in x, y (px)")
    density_sigma_z_slices: float = Field(1.0, gt=0, description="target blob σ in z (slices)")
    density_scale: float = Field(100.0, gt=0, description="integral of one particle's blob")
    density_gain: float = Field(
        1.0, gt=0, description="calibration of the density, fitted after training (unbiased counts)"
    )
    peak_threshold: float = Field(
        0.35, description="density maxima below this fraction of one particle's peak are ignored"
    )
    min_integral: float = Field(
        0.5, description="spots holding fewer particles than this are dropped"
    )
    peak_footprint_px: int = Field(3, description="side of the maximum filter in y, x (px)")
    tile_px: int = Field(512, description="inference tile side (px)")
    tile_overlap_px: int = Field(48, description="overlap of neighbouring tiles (px)")
    train: TrainConfig = TrainConfig(
        patch_yx_px=64,
        patch_z_slices=12,
        batch_size=8,
        steps_per_epoch=80,
        learning_rate=2e-3,
        epochs=60,
        patience=8,
        time_budget_s=7200.0,  # a safety cap: the epochs end these runs
        mixed_precision=True,
    )


ModelConfig = Annotated[CellModelConfig | PnpModelConfig, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[CellModelConfig | PnpModelConfig] = TypeAdapter(ModelConfig)


def save_config(config: CellModelConfig | PnpModelConfig, model_dir: Path) -> Path:
    """Write ``model_dir/config.json``; returns its path."""
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / CONFIG_FILE
    path.write_text(config.model_dump_json(indent=2) + "\n")
    return path


def load_config(model_dir: Path) -> CellModelConfig | PnpModelConfig:
    """The config saved in ``model_dir``; :class:`ModelNotFoundError` when absent or invalid."""
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"{model_dir}: no {CONFIG_FILE}; is this a model directory?")
    try:
        return _ADAPTER.validate_python(json.loads(path.read_text()))
    except (ValidationError, json.JSONDecodeError) as err:
        raise ModelNotFoundError(f"{path}: not a valid model config: {err}") from err
