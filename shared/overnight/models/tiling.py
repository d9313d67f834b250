"""Tiled inference in ``YX`` with overlapping tiles and linear blending, in bounded memory.

Each tile sees ``overlap_px / 4`` px of context beyond the part of it that counts; inside the
overlap the two tiles' predictions are blended by linear ramps that sum to one. Away from the
image edge, pixels nearer than a quarter of the overlap to a tile edge get weight zero, so a
result differs from untiled inference only where the network's receptive field reaches past
that context (small, see ``tests/models/test_tiling.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

Predictor = Callable[[np.ndarray], Any]


def tile_starts(size_px: int, tile_px: int, overlap_px: int, multiple: int) -> list[int]:
    """Start offsets (px) of tiles covering ``size_px``; starts are multiples of ``multiple``.

    Examples
    --------
    >>> tile_starts(1000, 512, 128, 4)
    [0, 384, 488]
    >>> tile_starts(300, 512, 128, 4)
    [0]
    """
    if size_px <= tile_px:
        return [0]
    stride = max(multiple, (tile_px - overlap_px) // multiple * multiple)
    starts = list(range(0, size_px - tile_px, stride))
    starts.append(size_px - tile_px)
    return starts


def balanced_tile_px(size_px: int, tile_px: int, overlap_px: int, multiple: int) -> int:
    """The shortest tile side (≤ ``tile_px``) covering ``size_px`` with as few tiles as it.

    The side is a multiple of ``multiple``. Spreading the overlap evenly keeps the work near
    linear in the field's area: a 2048 px axis takes 5 tiles of 448 px (2240 px run) instead
    of 5 of 512 (2560 px).

    Examples
    --------
    >>> balanced_tile_px(2048, 512, 48, 4)
    448
    >>> balanced_tile_px(512, 512, 48, 4)
    512
    """
    if size_px <= tile_px:
        return tile_px
    n_tiles = len(tile_starts(size_px, tile_px, overlap_px, multiple))
    side = -(-(size_px + (n_tiles - 1) * overlap_px) // n_tiles)
    side = -(-side // multiple) * multiple
    while side < tile_px and len(tile_starts(size_px, side, overlap_px, multiple)) > n_tiles:
        side += multiple
    return min(side, tile_px)


def blend_weights(length: int, start: int, size_px: int, overlap_px: int) -> np.ndarray:
    """1D weights of a tile ``[start, start + length)`` in an axis of ``size_px`` (px).

    Zero for the first and last ``overlap_px / 4`` px, then a linear ramp to 1 over
    ``overlap_px / 2`` px; no ramp where the tile touches the image edge.
    """
    w = np.ones(length, np.float32)
    quarter = overlap_px / 4.0
    ramp = np.clip((np.arange(length) + 0.5 - quarter) / max(overlap_px / 2.0, 1e-6), 0.0, 1.0)
    if start > 0:
        w = np.minimum(w, ramp)
    if start + length < size_px:
        w = np.minimum(w, ramp[::-1])
    return w.astype(np.float32)


def _windows(
    shape_yx: tuple[int, int], tiles_px: tuple[int, int], overlap_px: int, multiple: int
) -> Iterator[tuple[int, int]]:
    for y0 in tile_starts(shape_yx[0], tiles_px[0], overlap_px, multiple):
        for x0 in tile_starts(shape_yx[1], tiles_px[1], overlap_px, multiple):
            yield y0, x0


def pad_to_multiple(array: np.ndarray, multiple: int, yx_axes: tuple[int, int]) -> np.ndarray:
    """Zero-pad the ``YX`` axes of ``array`` at their end up to a multiple of ``multiple``."""
    pad = [(0, 0)] * array.ndim
    for axis in yx_axes:
        pad[axis] = (0, (-array.shape[axis]) % multiple)
    return np.pad(array, pad) if any(p[1] for p in pad) else array


#: Slices shared by neighbouring z windows of a 2.5-D network (stacks deeper than its window).
Z_OVERLAP_SLICES = 4


def z_window_starts(n_z: int, window: int, overlap: int = Z_OVERLAP_SLICES) -> list[int]:
    """First slices of the ``window``-slice windows that cover ``n_z`` slices.

    A stack no deeper than the window is one window (zero-padded to it). Windows overlap by
    ``overlap`` slices, at most half a window.

    Examples
    --------
    >>> z_window_starts(12, 12)
    [0]
    >>> z_window_starts(32, 12)
    [0, 8, 16, 20]
    """
    return tile_starts(n_z, window, min(overlap, window // 2), 1)


def predict_z_windows(
    predict: Callable[[np.ndarray], np.ndarray],
    volume: np.ndarray,
    window: int,
    overlap: int = Z_OVERLAP_SLICES,
) -> np.ndarray:
    """Run ``predict`` (``(K, ...)`` → ``(K, ...)``) over z windows of ``volume`` and blend.

    Stacks thinner than the window are zero-padded, centred, and cropped back; deeper ones
    are covered by windows overlapping by ``overlap`` slices, blended like ``YX`` tiles.
    """
    n_z = volume.shape[0]
    if n_z <= window:
        before = (window - n_z) // 2
        pad = [(before, window - n_z - before)] + [(0, 0)] * (volume.ndim - 1)
        return predict(np.pad(volume, pad))[before : before + n_z]
    overlap = min(overlap, window // 2)
    out: np.ndarray | None = None
    norm = np.zeros(n_z, np.float32)
    for z0 in z_window_starts(n_z, window, overlap):
        result = predict(volume[z0 : z0 + window])
        weight = blend_weights(window, z0, n_z, overlap)
        if out is None:
            out = np.zeros((n_z, *result.shape[1:]), np.float32)
        out[z0 : z0 + window] += result * weight.reshape(-1, *(1,) * (result.ndim - 1))
        norm[z0 : z0 + window] += weight
    assert out is not None
    return out / np.maximum(norm, 1e-12).reshape(-1, *(1,) * (out.ndim - 1))


def predict_tiled(
    predict: Predictor,
    image: np.ndarray,
    tile_px: int,
    overlap_px: int,
    multiple: int,
) -> tuple[np.ndarray, ...]:
    """Run ``predict`` over ``image`` tile by tile and blend the outputs.

    Parameters
    ----------
    predict : callable
        Maps a batch ``(1, [Z,] Y, X, C)`` to one array or a tuple of arrays
        ``(1, [Z,] Y, X, C_out)``.
    image : ndarray of shape ([Z,] Y, X, C)
        Channels last; ``Y`` and ``X`` of any size.
    tile_px, overlap_px : int
        Tile side and overlap of neighbours (px).
    multiple : int
        The network's ``YX`` size multiple; tiles start on it and are padded to it.

    Returns
    -------
    tuple of ndarray, each of shape ([Z,] Y, X, C_out)
        Blended outputs, float32.
    """
    yx_axes = (image.ndim - 3, image.ndim - 2)
    size = (image.shape[yx_axes[0]], image.shape[yx_axes[1]])
    tile_px = max(multiple, tile_px // multiple * multiple)
    tiles_px = (
        balanced_tile_px(size[0], tile_px, overlap_px, multiple),
        balanced_tile_px(size[1], tile_px, overlap_px, multiple),
    )
    # The tiles form a grid and each weight is wy ⊗ wx, so the sum of weights is separable:
    # two 1D accumulators instead of a field-sized one.
    starts_y = tile_starts(size[0], tiles_px[0], overlap_px, multiple)
    starts_x = tile_starts(size[1], tiles_px[1], overlap_px, multiple)
    if len(starts_y) == len(starts_x) == 1:  # one tile: every weight is 1, nothing to blend
        return _predict_whole(predict, image, multiple, yx_axes)
    norm_y = _axis_norm(starts_y, tiles_px[0], size[0], overlap_px)
    norm_x = _axis_norm(starts_x, tiles_px[1], size[1], overlap_px)
    outputs: list[np.ndarray] = []
    for y0, x0 in _windows(size, tiles_px, overlap_px, multiple):
        index = [slice(None)] * image.ndim
        index[yx_axes[0]] = slice(y0, y0 + tiles_px[0])
        index[yx_axes[1]] = slice(x0, x0 + tiles_px[1])
        tile = image[tuple(index)]
        th, tw = tile.shape[yx_axes[0]], tile.shape[yx_axes[1]]
        result = predict(
            pad_to_multiple(np.ascontiguousarray(tile, np.float32), multiple, yx_axes)[None]
        )
        results = result if isinstance(result, tuple) else (result,)
        wy = blend_weights(th, y0, size[0], overlap_px) / norm_y[y0 : y0 + th]
        wx = blend_weights(tw, x0, size[1], overlap_px) / norm_x[x0 : x0 + tw]
        weight = (wy[:, None] * wx[None, :])[..., None]
        if not outputs:
            outputs = [np.zeros((*image.shape[:-1], r.shape[-1]), np.float32) for r in results]
        for out, r in zip(outputs, results, strict=True):
            target = out[..., y0 : y0 + th, x0 : x0 + tw, :]
            target += r[0][..., :th, :tw, :] * weight
    return tuple(outputs)


def _predict_whole(
    predict: Predictor, image: np.ndarray, multiple: int, yx_axes: tuple[int, int]
) -> tuple[np.ndarray, ...]:
    """``predict`` on the whole ``image`` (padded to ``multiple``), cropped back, float32.

    The same values as blending a single tile (weight 1 everywhere), without the field-sized
    accumulators; ``+ 0`` turns a ``-0.0`` into ``0.0`` as the blend's sum would.
    """
    ny, nx = image.shape[yx_axes[0]], image.shape[yx_axes[1]]
    result = predict(
        pad_to_multiple(np.ascontiguousarray(image, np.float32), multiple, yx_axes)[None]
    )
    results = result if isinstance(result, tuple) else (result,)
    return tuple(np.add(r[0][..., :ny, :nx, :], np.float32(0.0), dtype=np.float32) for r in results)


def _axis_norm(starts: list[int], length: int, size_px: int, overlap_px: int) -> np.ndarray:
    """Sum over the tiles along one axis of their blend weights (px), never zero."""
    norm = np.zeros(size_px, np.float32)
    for start in starts:
        stop = min(start + length, size_px)
        norm[start:stop] += blend_weights(stop - start, start, size_px, overlap_px)
    return np.maximum(norm, 1e-12)
