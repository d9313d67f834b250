"""Convert an array with named axes (tifffile's ``series.axes``) to the pipeline's ``ZCYX``, once.

The rules, in order:

1. Axes of length 1 other than Z, C, Y, X are dropped (``TZCYX`` with T = 1 is ``ZCYX``).
2. ``T`` longer than 1 needs ``timepoint=``: that timepoint is kept, the others are not read.
3. ``S`` (samples per pixel, e.g. RGB) is the channel axis; with a real ``C`` axis as well,
   channels are ``C``-major (C0S0, C0S1, ..., C1S0, ...).
4. One unlabelled axis (tifffile's ``Q`` unknown, ``I`` image sequence) is read as Z when the
   file has no Z: a plain multi-page TIFF is taken as a z-stack. Pass ``axes=`` to the reader
   when it is something else (e.g. ``"CYX"`` for a two-page cell/pnp file).
5. Missing Z or C become length 1 (a ``CYX`` field is Z = 1; ``YX`` is Z = 1, C = 1).

Only views are taken (transpose, index, new axes) except in rule 3 with both C and S, so a
memory-mapped array stays memory-mapped.
"""

from __future__ import annotations

import logging

import numpy as np

from overnight.errors import InvalidImageError
from overnight.imaging.stack import PIPELINE_AXES

logger = logging.getLogger(__name__)

#: tifffile's letters for axes that carry no physical meaning.
UNLABELLED_AXES = frozenset("QI")


def _check_axes(source: str, axes: str, shape: tuple[int, ...]) -> None:
    if len(axes) != len(shape):
        raise InvalidImageError(
            source, f"axes {axes!r} do not match the image shape {shape} ({len(shape)} dimensions)"
        )
    if len(set(axes)) != len(axes):
        raise InvalidImageError(source, f"axes {axes!r} name an axis twice")
    if "Y" not in axes or "X" not in axes:
        raise InvalidImageError(source, f"axes {axes!r} lack Y and X; the pipeline needs images")


def _select_timepoint(
    source: str, data: np.ndarray, axes: str, timepoint: int | None
) -> tuple[np.ndarray, str]:
    if "T" not in axes:
        if timepoint not in (None, 0):
            raise InvalidImageError(source, f"has no T axis; timepoint {timepoint} does not exist")
        return data, axes
    n_t = data.shape[axes.index("T")]
    if timepoint is None:
        if n_t == 1:
            return np.take(data, 0, axis=axes.index("T")), axes.replace("T", "")
        raise InvalidImageError(
            source,
            f"has {n_t} timepoints (T axis); the pipeline analyses one field per file: save "
            "each timepoint as its own file (e.g. with a timepoint-<n> field in its name), "
            f"or read one in Python with read_stack(path, timepoint=0..{n_t - 1})",
        )
    if not 0 <= timepoint < n_t:
        raise InvalidImageError(source, f"timepoint {timepoint} is out of range 0..{n_t - 1}")
    return np.take(data, timepoint, axis=axes.index("T")), axes.replace("T", "")


def _samples_as_channels(data: np.ndarray, axes: str) -> tuple[np.ndarray, str]:
    if "S" not in axes:
        return data, axes
    if "C" not in axes:
        return data, axes.replace("S", "C")
    order = [i for i, a in enumerate(axes) if a != "S"]
    c_pos = order.index(axes.index("C"))
    order.insert(c_pos + 1, axes.index("S"))
    data = data.transpose(order)
    kept = "".join(axes[i] for i in order)
    shape = list(data.shape)
    shape[c_pos : c_pos + 2] = [shape[c_pos] * shape[c_pos + 1]]
    return data.reshape(shape), kept.replace("S", "")


def to_zcyx(
    data: np.ndarray, axes: str, *, source: str, timepoint: int | None = None
) -> np.ndarray:
    """Reorder ``data`` with axes ``axes`` (tifffile letters) to ``ZCYX``.

    Parameters
    ----------
    data : ndarray
        Pixels in the file's axis order, e.g. shape (C, Z, Y, X) for ``"CZYX"``.
    axes : str
        One letter per dimension of ``data``: Z, C, Y, X, T, S, Q, I, ...
    source : str
        File name for error messages.
    timepoint : int, optional
        Index along T to keep when the file has several timepoints.

    Returns
    -------
    ndarray
        Shape (Z, C, Y, X); a view of ``data`` unless both C and S were present.

    Raises
    ------
    InvalidImageError
        When the axes do not fit the shape, T > 1 without ``timepoint``, or axes that cannot be
        placed (two unlabelled axes, an unlabelled axis beside Z, an unknown axis longer than 1).

    Examples
    --------
    >>> to_zcyx(np.zeros((2, 5, 8, 9)), "CZYX", source="a.tif").shape
    (5, 2, 8, 9)
    >>> to_zcyx(np.zeros((8, 9)), "YX", source="a.tif").shape
    (1, 1, 8, 9)
    """
    axes = axes.upper()
    _check_axes(source, axes, data.shape)
    data, axes = _select_timepoint(source, data, axes, timepoint)
    for axis in [a for a in axes if a not in PIPELINE_AXES and a != "S"]:
        if data.shape[axes.index(axis)] == 1:
            data, axes = np.take(data, 0, axis=axes.index(axis)), axes.replace(axis, "")
    data, axes = _samples_as_channels(data, axes)
    unlabelled = [a for a in axes if a in UNLABELLED_AXES]
    if len(unlabelled) == 1 and "Z" not in axes:
        logger.info("%s: reading unlabelled axis %s of %r as Z", source, unlabelled[0], axes)
        axes = axes.replace(unlabelled[0], "Z")
    unknown = [a for a in axes if a not in PIPELINE_AXES]
    if unknown:
        raise InvalidImageError(
            source,
            f"cannot place axes {''.join(unknown)!r} of {axes!r} (shape {data.shape}) in "
            f"{PIPELINE_AXES}; save the file with OME or ImageJ axes metadata, or give the axes",
        )
    for axis in "ZC":
        if axis not in axes:
            data, axes = data[np.newaxis], axis + axes
    return data.transpose([axes.index(a) for a in PIPELINE_AXES])
