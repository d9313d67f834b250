"""The particle density's basins, computed on the ~1 % of voxels they cover.

A field's density is a few hundred blobs in a ``ZYX`` volume of millions of voxels. Labelling
the whole volume (twice: maxima and mask), scanning it for its non-zero voxels and finding the
parts' boxes cost more than the rest of the spot extraction, so the mask's voxels are listed
once and their connected parts found on that list (a sparse graph of face neighbours).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from overnight.lazy import lazy_module

if TYPE_CHECKING:  # the `analysis` extra, imported on first use (overnight.lazy)
    from scipy import sparse
    from scipy.sparse import csgraph
    from skimage import segmentation
else:
    sparse = lazy_module("scipy.sparse")
    csgraph = lazy_module("scipy.sparse.csgraph")
    segmentation = lazy_module("skimage.segmentation")


def voxel_components(flat: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """Connected parts of a set of voxels, numbered as ``scipy.ndimage.label`` numbers them.

    Parameters
    ----------
    flat : ndarray of int, ascending
        Flat (C-order) indices of the voxels into an array of ``shape``.
    shape : tuple of int
        The array's shape.

    Returns
    -------
    labels : ndarray of int64, shape (len(flat),)
        Each voxel's part ``1..n``: voxels sharing a face are in one part, and parts are
        numbered in the order of their first voxel (raster order), as ``ndi.label`` does.
    n : int
        The number of parts.

    Examples
    --------
    >>> voxel_components(np.array([0, 1, 3, 8]), (3, 3))
    (array([1, 1, 2, 3]), 3)
    """
    n_voxels = len(flat)
    if not n_voxels:
        return np.zeros(0, np.int64), 0
    coords = np.unravel_index(flat, shape)
    rows, cols = [], []
    stride = 1
    for axis in reversed(range(len(shape))):  # the next voxel along each axis, if listed
        within = np.flatnonzero(coords[axis] < shape[axis] - 1)
        target = flat[within] + stride
        found = np.minimum(np.searchsorted(flat, target), n_voxels - 1)
        hit = flat[found] == target
        rows.append(within[hit])
        cols.append(found[hit])
        stride *= shape[axis]
    row, col = np.concatenate(rows), np.concatenate(cols)
    graph = sparse.coo_matrix((np.ones(len(row), np.int8), (row, col)), (n_voxels, n_voxels))
    n, part = csgraph.connected_components(graph, directed=False)
    _, first = np.unique(part, return_index=True)  # each part's first voxel (flat ascends)
    number = np.empty(n, np.int64)
    number[np.argsort(first)] = np.arange(1, n + 1)
    return number[part], int(n)


def basin_voxels(
    density: np.ndarray, maxima: np.ndarray, mask_level: float
) -> tuple[np.ndarray, np.ndarray]:
    """The watershed basins of ``density``'s ``maxima`` within ``density > mask_level``.

    Parameters
    ----------
    density : ndarray, ``ZYX``
        The particle density.
    maxima : ndarray of int, shape (M, 3)
        Positions of its maxima (raster order); maxima sharing a face form one marker.
    mask_level : float
        Voxels above it are flooded.

    Returns
    -------
    flat : ndarray of intp
        Flat indices (ascending) of the voxels above ``mask_level``.
    labels : ndarray of int32
        Each voxel's basin ``1..N``, as ``skimage.segmentation.watershed(-density,
        ndi.label(maxima), mask=density > mask_level)`` labels it; 0 in parts of the mask
        without a maximum. A part with one marker is that marker's basin; only parts with
        several are flooded, each in its own bounding box.
    """
    flat = np.flatnonzero(density > mask_level)
    labels = np.zeros(len(flat), np.int32)
    marker_flat = np.ravel_multi_index(tuple(np.asarray(maxima).T), density.shape)
    marker_of, n = voxel_components(marker_flat, density.shape)
    if n == 0 or not len(flat):
        return flat, labels
    part_of, n_parts = voxel_components(flat, density.shape)
    found = np.minimum(np.searchsorted(flat, marker_flat), len(flat) - 1)
    in_mask = flat[found] == marker_flat
    marker_part = np.zeros(n + 1, np.int64)  # the part each marker lies in (0: none)
    marker_part[marker_of[in_mask]] = part_of[found[in_mask]]
    n_markers = np.bincount(marker_part[1:], minlength=n_parts + 1)
    only_marker = np.zeros(n_parts + 1, np.int64)
    only_marker[marker_part[1:]] = np.arange(1, n + 1)
    single = n_markers[part_of] == 1
    labels[single] = only_marker[part_of[single]]
    crowded = np.flatnonzero(n_markers > 1)
    if not len(crowded):
        return flat, labels
    coords = np.column_stack(np.unravel_index(flat, density.shape))
    in_crowded = np.flatnonzero(n_markers[part_of] > 1)
    by_part = in_crowded[np.argsort(part_of[in_crowded], kind="stable")]
    bounds = np.searchsorted(part_of[by_part], np.append(crowded, n_parts + 1))
    marker_coords = np.asarray(maxima)[in_mask]
    marker_ids = marker_of[in_mask]
    marker_parts = part_of[found[in_mask]]
    for index, part in enumerate(crowded):
        voxels = by_part[bounds[index] : bounds[index + 1]]
        local = coords[voxels]
        low = local.min(axis=0)
        window = tuple(slice(a, b + 1) for a, b in zip(low, local.max(axis=0), strict=True))
        inside = np.zeros(tuple(w.stop - w.start for w in window), bool)
        inside[tuple((local - low).T)] = True
        markers = np.zeros(inside.shape, np.int32)
        here = marker_parts == part
        markers[tuple((marker_coords[here] - low).T)] = marker_ids[here]
        flooded = segmentation.watershed(-density[window], markers, mask=inside)
        labels[voxels] = flooded[tuple((local - low).T)]
    return flat, labels
