"""Training loop shared by the models: random patches, augmentation, early stopping, checkpoints.

Patches are cut at random from whole training images held in memory; ``feature_fraction``
of them are centred on a feature (a cell pixel, a particle) so that patches with features
are not a minority. Augmentation: flips and 90° rotations in ``YX``, intensity scaling and
offset, Gaussian noise. Validation uses a fixed set of patches from images kept aside.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from overnight.errors import ConfigError
from overnight.models.config import TrainConfig, UNetConfig

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.weights.h5"

#: Called after every epoch with (epochs done, most epochs, that epoch's logs): how a queued
#: training run reports its progress (see :func:`epoch_progress`).
EpochListener = Callable[[int, int, dict[str, float]], None]
_epoch_listener: ContextVar[EpochListener | None] = ContextVar("epoch_listener", default=None)


@contextmanager
def epoch_progress(listener: EpochListener) -> Iterator[None]:
    """Call ``listener`` after each epoch of every :func:`fit` run inside the block."""
    token = _epoch_listener.set(listener)
    try:
        yield
    finally:
        _epoch_listener.reset(token)


@dataclass(frozen=True)
class TrainingPairs:
    """Images and their targets, with feature positions for centred sampling.

    ``inputs[i]`` and ``targets[i]`` are ``YX`` or ``ZYX`` arrays of the same shape;
    ``features[i]`` is ``(N, ndim)`` integer positions (may be empty). With
    ``channels_last`` the inputs carry a last channel axis (``YXC``, several input channels)
    that patches keep whole and batches do not add.
    """

    inputs: list[np.ndarray]
    targets: list[np.ndarray]
    features: list[np.ndarray]
    channels_last: bool = False


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the intensity augmentation (the geometric one is always on)."""

    scale: tuple[float, float] = (0.8, 1.25)
    offset: tuple[float, float] = (-0.05, 0.05)
    noise_sd: tuple[float, float] = (0.0, 0.03)
    #: Optional, off by default (drawing nothing, so the default stream is unchanged):
    #: ``gamma`` bends the intensities (``sign(x)·|x|^γ``, before scale and offset) and
    #: ``tilt`` multiplies by a linear ramp of up to ± that fraction across the patch.
    gamma: tuple[float, float] | None = None
    tilt: float = 0.0


@dataclass(frozen=True)
class FitResult:
    """How a training run went."""

    epochs_run: int
    best_val_loss: float
    seconds: float
    history: dict[str, list[float]]

    @classmethod
    def untrained(cls) -> FitResult:
        """The result of keeping the initial weights (``--epochs 0``)."""
        return cls(0, float("nan"), 0.0, {})


def _crop(array: np.ndarray, starts: tuple[int, ...], sizes: tuple[int, ...]) -> np.ndarray:
    """A window of ``array`` (zero-padded where it runs past the edges)."""
    pads = []
    index = []
    for start, size, length in zip(starts, sizes, array.shape, strict=True):
        lo, hi = max(start, 0), min(start + size, length)
        index.append(slice(lo, hi))
        pads.append((lo - start, start + size - hi))
    window = array[tuple(index)]
    return np.pad(window, pads) if any(p != (0, 0) for p in pads) else window


def sample_patch(
    rng: np.random.Generator, pairs: TrainingPairs, config: TrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """One (input, target) patch of ``config``'s size, not yet augmented."""
    i = int(rng.integers(len(pairs.inputs)))
    image, target, features = pairs.inputs[i], pairs.targets[i], pairs.features[i]
    ndim = target.ndim
    sizes = (
        (config.patch_yx_px,) * 2
        if ndim == 2
        else (config.patch_z_slices, config.patch_yx_px, config.patch_yx_px)
    )
    if len(features) and rng.random() < config.feature_fraction:
        centre = features[int(rng.integers(len(features)))] + rng.integers(
            -sizes[-1] // 4, sizes[-1] // 4 + 1, ndim
        )
    else:
        centre = np.array([int(rng.integers(s)) for s in target.shape])
    starts = tuple(int(c) - s // 2 for c, s in zip(centre, sizes, strict=True))
    if ndim == 3:  # keep whole slices in z where the stack allows: shift rather than pad
        z0 = int(
            np.clip(starts[0], min(0, image.shape[0] - sizes[0]), max(0, image.shape[0] - sizes[0]))
        )
        if image.shape[0] < sizes[0]:
            z0 = -int(rng.integers(0, sizes[0] - image.shape[0] + 1))
        starts = (z0, *starts[1:])
    image_sizes = (*sizes, image.shape[-1]) if pairs.channels_last else sizes
    image_starts = (*starts, 0) if pairs.channels_last else starts
    return _crop(image, image_starts, image_sizes), _crop(target, starts, sizes)


def augment(
    rng: np.random.Generator, image: np.ndarray, target: np.ndarray, intensity: Augmentation
) -> tuple[np.ndarray, np.ndarray]:
    """Random flip, 90° rotation (``YX``), intensity scale/offset and noise (input only).

    An ``image`` with one axis more than ``target`` has channels last (``YXC``): the same
    geometry is applied to its ``Y`` and ``X`` axes.
    """
    if image.ndim == target.ndim + 1:
        k = int(rng.integers(4))
        image, target = np.rot90(image, k, axes=(0, 1)), np.rot90(target, k, axes=(0, 1))
        if rng.random() < 0.5:
            image, target = image[:, ::-1], target[:, ::-1]
        shape_yx = image.shape[:2]
        ramp = _ramp(rng, intensity, shape_yx)
        image = _intensity(rng, image, intensity, None if ramp is None else ramp[..., None])
        return image, np.ascontiguousarray(target)
    k = int(rng.integers(4))
    image, target = np.rot90(image, k, axes=(-2, -1)), np.rot90(target, k, axes=(-2, -1))
    if rng.random() < 0.5:
        image, target = image[..., ::-1], target[..., ::-1]
    if image.ndim == 3 and rng.random() < 0.5:
        image, target = image[::-1], target[::-1]
    image = _intensity(rng, image, intensity, _ramp(rng, intensity, image.shape[-2:]))
    return image, np.ascontiguousarray(target)


def _ramp(
    rng: np.random.Generator, intensity: Augmentation, shape_yx: tuple[int, ...]
) -> np.ndarray | None:
    """The multiplicative tilt of ``intensity.tilt`` over a ``YX`` plane, or None (no draw)."""
    if not intensity.tilt:
        return None
    angle = rng.uniform(0, 2 * np.pi)
    amount = rng.uniform(-intensity.tilt, intensity.tilt)
    ramp_y = np.linspace(-1, 1, shape_yx[0])[:, None] * np.sin(angle)
    ramp_x = np.linspace(-1, 1, shape_yx[1])[None, :] * np.cos(angle)
    return (1 + amount * (ramp_y + ramp_x) / 2).astype(np.float32)


def _intensity(
    rng: np.random.Generator,
    image: np.ndarray,
    intensity: Augmentation,
    ramp: np.ndarray | None = None,
) -> np.ndarray:
    """Optional gamma and tilt, then scale, offset and Gaussian noise (float32)."""
    if intensity.gamma is not None:
        gamma = rng.uniform(*intensity.gamma)
        image = np.sign(image) * np.abs(image) ** gamma
    if ramp is not None:
        image = image * ramp
    scale = rng.uniform(*intensity.scale)
    offset = rng.uniform(*intensity.offset)
    noise = rng.uniform(*intensity.noise_sd)
    image = image * scale + offset + rng.normal(0.0, noise, image.shape)
    return image.astype(np.float32)


WeightFn = Callable[[np.ndarray], np.ndarray]


def batches(
    pairs: TrainingPairs,
    config: TrainConfig,
    rng: np.random.Generator,
    intensity: Augmentation,
    weight_fn: WeightFn | None = None,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Endless augmented batches ``(x[..., None], y[, sample_weight])``."""
    while True:
        patches = [
            augment(rng, *sample_patch(rng, pairs, config), intensity)
            for _ in range(config.batch_size)
        ]
        x = np.stack([p[0] for p in patches])
        x = x if pairs.channels_last else x[..., None]
        y = np.stack([p[1] for p in patches])
        yield (x, y, weight_fn(y)) if weight_fn else (x, y)


def fixed_patches(
    pairs: TrainingPairs, config: TrainConfig, weight_fn: WeightFn | None = None
) -> tuple[np.ndarray, ...]:
    """The validation patches: ``val_patches`` drawn once with a fixed seed, not augmented."""
    rng = np.random.default_rng(config.split_seed + 7919)
    patches = [sample_patch(rng, pairs, config) for _ in range(config.val_patches)]
    x = np.stack([p[0] for p in patches]).astype(np.float32)
    x = x if pairs.channels_last else x[..., None]
    y = np.stack([p[1] for p in patches])
    return (x, y, weight_fn(y)) if weight_fn else (x, y)


def start_network(
    unet: UNetConfig,
    name: str,
    initial_weights: Path | None,
    epochs: int | None = None,
    mixed_precision: bool = False,
) -> Any:
    """A new network for ``unet``, with ``initial_weights`` loaded (resume or fine-tune).

    ``epochs=0`` (keep the weights, refit only what follows the network) needs weights.
    ``mixed_precision`` builds it to train in bfloat16 where the CPU computes that natively
    (see :func:`native_bfloat16` and :func:`inference_network`), else in float32.
    """
    from overnight.models.unet import build_unet

    if epochs == 0 and initial_weights is None:
        raise ConfigError("--epochs 0 (calibrate only) needs --init: there are no weights to keep")
    policy = None
    if mixed_precision and epochs != 0:
        if native_bfloat16():
            policy = "mixed_bfloat16"
        else:
            logger.info("this CPU has no native bfloat16 (AMX, AVX512-BF16): training in float32")
    network = build_unet(unet, name=name, dtype_policy=policy)
    if initial_weights is not None:
        network.load_weights(initial_weights)
    return network


def native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX or AVX512-BF16 on x86).

    Elsewhere TensorFlow emulates it, and mixed precision would train slower than float32.
    """
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:
        return False
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def inference_network(network: Any, unet: UNetConfig, name: str) -> Any:
    """``network`` in float32 (a copy when it computes in mixed precision): what is shipped."""
    from overnight.models.unet import build_unet

    if all(layer.compute_dtype == "float32" for layer in network.layers):
        return network
    copy = build_unet(unet, name=name)
    copy.set_weights(network.get_weights())
    return copy


def _time_budget_callback(start: float, budget_s: float) -> object:
    import keras

    class TimeBudget(keras.callbacks.Callback):
        """Stop training after the epoch that exceeds the time budget."""

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if time.perf_counter() - start > budget_s:
                logger.info("time budget of %.0f s reached after epoch %d", budget_s, epoch + 1)
                self.model.stop_training = True

    return TimeBudget()


def _progress_callback(listener: EpochListener, epochs: int) -> object:
    import keras

    class Progress(keras.callbacks.Callback):
        """Report each finished epoch to the listener."""

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            listener(epoch + 1, epochs, {k: float(v) for k, v in (logs or {}).items()})

    return Progress()


def fit(
    network: object,
    train: TrainingPairs,
    val: TrainingPairs,
    config: TrainConfig,
    loss: object,
    out_dir: Path,
    intensity: Augmentation = Augmentation(),
    weight_fn: WeightFn | None = None,
    epochs: int | None = None,
    verbose: int = 2,
) -> FitResult:
    """Train ``network`` on patches of ``train``; best weights (by validation loss) restored.

    A checkpoint of the best weights is kept in ``out_dir/checkpoint.weights.h5`` while
    training runs, so an interrupted run loses at most an epoch.
    """
    import keras

    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    network.compile(  # type: ignore[attr-defined]
        optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss, jit_compile=False
    )
    rng = np.random.default_rng(config.seed)
    callbacks = [
        keras.callbacks.EarlyStopping(
            patience=config.patience, restore_best_weights=True, verbose=verbose
        ),
        keras.callbacks.ModelCheckpoint(
            out_dir / CHECKPOINT_FILE, save_best_only=True, save_weights_only=True, verbose=0
        ),
        keras.callbacks.ReduceLROnPlateau(
            factor=0.5, patience=max(2, config.patience // 2), verbose=verbose
        ),
    ]
    start = time.perf_counter()
    callbacks.append(_time_budget_callback(start, config.time_budget_s))
    listener = _epoch_listener.get()
    if listener is not None:
        callbacks.append(_progress_callback(listener, epochs or config.epochs))
    with warnings.catch_warnings():  # Keras warns that a generator is not shuffled: it is random
        warnings.filterwarnings("ignore", message=".*shuffle=True.*")
        history = network.fit(  # type: ignore[attr-defined]
            batches(train, config, rng, intensity, weight_fn),
            steps_per_epoch=config.steps_per_epoch,
            epochs=epochs or config.epochs,
            validation_data=fixed_patches(val, config, weight_fn),
            callbacks=callbacks,
            verbose=verbose,
        )
    seconds = time.perf_counter() - start
    record = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    checkpoint = out_dir / CHECKPOINT_FILE
    if checkpoint.is_file():  # the best epoch's weights, whichever callback ended the run
        network.load_weights(checkpoint)  # type: ignore[attr-defined]
        checkpoint.unlink()
    val_loss = record.get("val_loss", [float("nan")])
    logger.info(
        "trained %d epochs in %.0f s; best val loss %.4f", len(val_loss), seconds, min(val_loss)
    )
    return FitResult(len(val_loss), float(min(val_loss)), seconds, record)


class _DistanceFromStart:
    """``strength · Σ (w − w₀)²`` of one variable: the L2-SP penalty (a Keras regularizer)."""

    def __init__(self, start: np.ndarray, strength: float) -> None:
        self.start = np.asarray(start, np.float32)
        self.strength = float(strength)

    def __call__(self, value: Any) -> Any:
        from keras import ops

        difference = ops.cast(value, "float32") - ops.convert_to_tensor(self.start)
        return self.strength * ops.sum(ops.square(difference))


def anchor_weights(network: Any, strength: float) -> None:
    """Penalise each trainable weight's squared distance from its value now (L2-SP).

    Fine-tuning from a model on a few fields then moves the weights only as far as the new
    data asks, so what the initial model knew is kept (Li et al. 2018, "Explicit inductive
    bias for transfer learning"); the penalty enters the training loss through the weights'
    regularizers.
    """
    for variable in network.trainable_weights:
        variable.regularizer = _DistanceFromStart(np.array(variable.numpy()), strength)


def train_network(
    unet: UNetConfig,
    config: TrainConfig,
    name: str,
    pairs: Callable[[], tuple[TrainingPairs, TrainingPairs]],
    loss: object,
    out_dir: Path,
    initial_weights: Path | None = None,
    epochs: int | None = None,
    intensity: Augmentation = Augmentation(),
    weight_fn: WeightFn | None = None,
    verbose: int = 2,
) -> tuple[Any, FitResult]:
    """A float32 network for ``unet`` trained on ``pairs()`` (training, validation), and how.

    ``epochs=0`` keeps ``initial_weights`` untouched (and never builds the pairs), so the
    caller refits only what follows the network.
    """
    network = start_network(unet, name, initial_weights, epochs, config.mixed_precision)
    if epochs == 0:
        return network, FitResult.untrained()
    if config.l2_sp and initial_weights is not None:
        anchor_weights(network, config.l2_sp)
    train, val = pairs()
    result = fit(network, train, val, config, loss, out_dir, intensity, weight_fn, epochs, verbose)
    return inference_network(network, unet, name), result
