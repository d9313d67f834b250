"""U-Net builders (2D ``YX`` and 3D ``ZYX``) and a compiled prediction function.

The networks are fully convolutional (any spatial size that is a multiple of
``UNetConfig.size_multiple_px`` in ``YX``), channels last. The layer named ``features``
is the last decoder feature map (``base_filters`` channels at full resolution); the cell
model pools it per cell for its type classifier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from overnight.models.config import UNetConfig

FEATURES_LAYER = "features"


def _conv_block(x: Any, filters: int, ndim: int, name: str, dtype: str | None) -> Any:
    conv = layers.Conv2D if ndim == 2 else layers.Conv3D
    for i in (1, 2):
        x = conv(
            filters, 3, padding="same", activation="relu", name=f"{name}_conv{i}", dtype=dtype
        )(x)
    return x


def build_unet(
    config: UNetConfig, name: str = "unet", dtype_policy: str | None = None
) -> keras.Model:
    """A U-Net as described by ``config``; input ``(batch, [Z,] Y, X, in_channels)``.

    ``dtype_policy`` (e.g. ``"mixed_bfloat16"``, for training) sets the layers' compute type;
    the head always computes in float32, and the weights are float32 either way. A 2.5-D
    network (``z_window_slices = K``) takes and returns ``(batch, K, Y, X, C)``; inside, the
    ``K`` slices are the channels of a 2D U-Net.

    Examples
    --------
    >>> model = build_unet(UNetConfig(ndim=2, in_channels=1, out_channels=3, base_filters=4))
    >>> model.output_shape
    (None, None, None, 3)
    >>> config = UNetConfig(ndim=3, out_channels=1, base_filters=4, z_window_slices=6)
    >>> build_unet(config).output_shape
    (None, 6, None, None, 1)
    """
    if config.ndim == 3 and config.z_window_slices:
        return _build_unet_25d(config, name, dtype_policy)
    ndim = config.ndim
    spatial = (None,) * ndim
    inputs = keras.Input(shape=(*spatial, config.in_channels), name="image")
    x = _unet_body(inputs, config, ndim, dtype_policy)
    conv = layers.Conv2D if ndim == 2 else layers.Conv3D
    outputs = conv(
        config.out_channels, 1, activation=config.head_activation, name="head", dtype="float32"
    )(x)
    return keras.Model(inputs, outputs, name=name)


def _unet_body(x: Any, config: UNetConfig, ndim: int, dtype_policy: str | None) -> Any:
    """Encoder, bottom and decoder of a U-Net; returns the ``features`` map."""
    pool_size = (2, 2) if ndim == 2 else (1, 2, 2)
    pool = layers.MaxPooling2D if ndim == 2 else layers.MaxPooling3D
    up = layers.UpSampling2D if ndim == 2 else layers.UpSampling3D
    skips = []
    for level in range(config.n_levels - 1):
        x = _conv_block(x, config.base_filters * 2**level, ndim, f"down{level}", dtype_policy)
        skips.append(x)
        x = pool(pool_size, name=f"pool{level}", dtype=dtype_policy)(x)
    bottom = config.base_filters * 2 ** (config.n_levels - 1)
    x = _conv_block(x, bottom, ndim, "bottom", dtype_policy)
    for level in reversed(range(config.n_levels - 1)):
        x = up(pool_size, name=f"up{level}", dtype=dtype_policy)(x)
        x = layers.Concatenate(name=f"skip{level}", dtype=dtype_policy)([x, skips[level]])
        x = _conv_block(x, config.base_filters * 2**level, ndim, f"dec{level}", dtype_policy)
    return layers.Identity(name=FEATURES_LAYER, dtype=dtype_policy)(x)


def _build_unet_25d(config: UNetConfig, name: str, dtype_policy: str | None) -> keras.Model:
    """A 2D U-Net whose channels are ``z_window_slices`` slices × the channels, in and out.

    Slices are few (5–12) and particles span only ~3 of them, so one 2D network that sees all
    slices of a pixel at once costs a fraction of 3D convolutions at every slice.
    """
    k, c_in, c_out = config.z_window_slices, config.in_channels, config.out_channels
    inputs = keras.Input(shape=(k, None, None, c_in), name="image")

    def to_channels(volume: Any) -> Any:  # (B, K, Y, X, C) → (B, Y, X, K·C)
        shape = keras.ops.shape(volume)
        moved = keras.ops.transpose(volume, (0, 2, 3, 1, 4))
        return keras.ops.reshape(moved, (shape[0], shape[2], shape[3], k * c_in))

    def to_slices(image: Any) -> Any:  # (B, Y, X, K·C) → (B, K, Y, X, C)
        shape = keras.ops.shape(image)
        split = keras.ops.reshape(image, (shape[0], shape[1], shape[2], k, c_out))
        return keras.ops.transpose(split, (0, 3, 1, 2, 4))

    x = layers.Lambda(to_channels, name="slices_to_channels")(inputs)
    x = _unet_body(x, config, 2, dtype_policy)
    x = layers.Conv2D(
        k * c_out, 1, activation=config.head_activation, name="head", dtype="float32"
    )(x)
    outputs = layers.Lambda(to_slices, name="channels_to_slices", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def count_flops(config: UNetConfig, spatial_shape: tuple[int, ...]) -> float:
    """Multiply-adds × 2 of one forward pass on ``spatial_shape`` (``[Z,] Y, X``), in FLOP.

    Counts the convolutions only (pooling, up-sampling and activations are negligible). A
    2.5-D network is counted per window of ``z_window_slices``, as many windows as
    :func:`overnight.models.tiling.z_window_starts` takes for the stack.

    Examples
    --------
    >>> count_flops(UNetConfig(ndim=2, in_channels=1, out_channels=1, base_filters=2,
    ...                        n_levels=1), (4, 4))
    1792.0
    """
    if config.ndim == 3 and config.z_window_slices:
        from overnight.models.tiling import z_window_starts

        k = config.z_window_slices
        windows = len(z_window_starts(spatial_shape[0], k))
        flat = config.model_copy(
            update={
                "ndim": 2,
                "in_channels": k * config.in_channels,
                "out_channels": k * config.out_channels,
                "z_window_slices": 0,
            }
        )
        return windows * count_flops(flat, tuple(spatial_shape[1:]))
    kernel = 3**config.ndim
    total = 0.0
    voxels = float(np.prod(spatial_shape))
    c_in = config.in_channels
    for level in range(config.n_levels - 1):
        f = config.base_filters * 2**level
        total += voxels * kernel * (c_in * f + f * f)
        c_in = f
        voxels /= 4
    f_bottom = config.base_filters * 2 ** (config.n_levels - 1)
    total += voxels * kernel * (c_in * f_bottom + f_bottom * f_bottom)
    c_in = f_bottom
    for level in reversed(range(config.n_levels - 1)):
        voxels *= 4
        f = config.base_filters * 2**level
        total += voxels * kernel * ((c_in + f) * f + f * f)
        c_in = f
    total += voxels * c_in * config.out_channels
    return 2.0 * total


def compiled_predictor(
    model: keras.Model, with_features: bool = False
) -> Callable[[np.ndarray], Any]:
    """A ``tf.function`` running ``model`` on one batch (no ``model.predict`` overhead, no XLA).

    With ``with_features`` it returns ``(output, features)`` as numpy arrays.
    """
    if with_features:
        target = keras.Model(
            model.inputs, [model.outputs[0], model.get_layer(FEATURES_LAYER).output]
        )
    else:
        target = model
    ndim = len(model.inputs[0].shape) - 2
    signature = [
        tf.TensorSpec(shape=(None, *(None,) * ndim, model.inputs[0].shape[-1]), dtype=tf.float32)
    ]

    @tf.function(input_signature=signature, autograph=False, jit_compile=False)
    def run(batch: tf.Tensor) -> Any:
        return target(batch, training=False)

    def predict(batch: np.ndarray) -> Any:
        result = run(tf.convert_to_tensor(batch, dtype=tf.float32))
        if isinstance(result, (list, tuple)):
            return tuple(np.asarray(r) for r in result)
        return np.asarray(result)

    return predict
