"""Read Leica ``.lif`` files through `liffile <https://github.com/cgohlke/liffile>`_ (BSD-3).

liffile (Christoph Gohlke, the author of tifffile) reads LIF, XLIF and LOF without Java and is
BSD-3-Clause; ``readlif`` (and ``bioio-lif``, which wraps it) are GPL-3.0, so liffile is the
one used. A LIF file is a set of images (scenes) that may differ in size and axes; each is
read on its own: :func:`open_lif` describes one scene, its ``read`` decodes one timepoint.

Axes: liffile names them ``T``, ``Z``, ``C``, ``Y``, ``X`` and, for spectral (lambda) scans,
``λ`` (emission) / ``Λ`` (excitation). A lambda axis is read as the channels (each plane is one
detection band) when the scene has no ``C`` axis; its channel names are the wavelengths
(``550 nm``). Any other axis longer than 1 (mosaic tiles, FLIM bins) is refused.

Pixel size, z-step and acquisition time come from the file: the ``X`` / ``Z`` coordinates
(metres) and the first frame's timestamp (else the file's creation date).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from overnight.errors import InvalidImageError
from overnight.imaging.calibration import Calibration

_LAMBDA_AXES = "λΛ"


def _step_um(coords: dict[str, Any], axis: str) -> float | None:
    values = np.asarray(coords.get(axis, []), dtype=float)
    if values.size < 2:
        return None
    step = abs(float(values[1] - values[0])) * 1e6  # metres → µm
    return step if step > 0 else None


def _zcyx_axes(source: str, dims: tuple[str, ...], sizes: dict[str, int]) -> dict[str, str]:
    """Each liffile axis as ``T``, ``Z``, ``C``, ``Y``, ``X``, or ``""`` (length 1: dropped)."""
    lambdas = [d for d in dims if d in _LAMBDA_AXES and sizes[d] > 1]
    if lambdas and (len(lambdas) > 1 or sizes.get("C", 1) > 1):
        raise InvalidImageError(
            source,
            f"LIF axes {''.join(dims)} {sizes}: a lambda scan with channels, or two "
            "lambda axes, cannot be read as channels",
        )
    names: dict[str, str] = {}
    for axis in dims:
        if axis in "TZCYX":
            names[axis] = axis
        elif axis in _LAMBDA_AXES and sizes[axis] > 1:
            names[axis] = "C"
        elif sizes[axis] == 1:
            names[axis] = ""
        else:
            raise InvalidImageError(
                source,
                f"LIF axis {axis!r} has {sizes[axis]} entries ({sizes}); only T, Z, C "
                "(or a lambda scan), Y and X are read (not mosaics or FLIM)",
            )
    return names


def _acquired_at(image: Any, lif: Any) -> str | None:
    stamps = getattr(image, "timestamps", None)
    if stamps is not None and len(stamps):
        return str(np.datetime_as_string(np.asarray(stamps)[0], unit="s"))
    created = getattr(lif, "datetime", None)
    return created.isoformat() if created is not None else None


def _frame_time(
    image: Any, dims: tuple[str, ...], sizes: dict[str, int], timepoint: int
) -> datetime | None:
    """The time stamp of a timepoint's first frame (LIF stamps every frame, T outermost)."""
    stamps = getattr(image, "timestamps", None)
    frame_dims = [d for d in dims if d not in "YX"]
    shape = [sizes[d] for d in frame_dims]
    if stamps is None or len(stamps) != int(np.prod(shape, dtype=int)) or not frame_dims:
        return None
    index = np.ravel_multi_index(tuple(timepoint if d == "T" else 0 for d in frame_dims), shape)
    stamp = np.asarray(stamps)[index].astype("datetime64[us]").astype(datetime)
    return stamp if isinstance(stamp, datetime) else None


def open_lif(
    path: Path, scene: int | None
) -> tuple[
    dict[str, Any],
    Callable[[int], np.ndarray],
    Callable[[], None],
    Callable[[int], datetime | None],
]:
    """Describe one scene (``scene``; None: the first) of a ``.lif`` file, decoding nothing.

    Returns
    -------
    facts : dict
        ``n_scenes``, ``n_timepoints``, ``shape_zcyx``, ``dtype``, ``calibration``,
        ``acquired_at`` of the scene (keyword arguments of ``VendorInfo`` less ``source``).
    read : callable
        ``read(timepoint)`` → the scene at that timepoint as ``ZCYX`` (in memory; the scene is
        decoded whole, then the timepoint kept).
    close : callable
        Closes the file.
    time_of : callable
        ``time_of(timepoint)`` → the time stamp of its first frame, None when not stated.

    Raises
    ------
    InvalidImageError
        liffile not installed, not a LIF file, no images, scene out of range, axes that cannot
        be placed in ZCYX.
    """
    source = str(path)
    try:
        import liffile
    except ImportError as err:
        raise InvalidImageError(
            source,
            "reading .lif files needs the optional package 'liffile', which is not installed: "
            "pip install 'overnight[formats]'",
        ) from err
    try:
        lif = liffile.LifFile(path, squeeze=False)
        images = list(lif.images)
    except Exception as err:  # liffile raises LifFileError, ValueError or OSError
        raise InvalidImageError(source, f"is not a readable LIF file ({err})") from err
    if not images:
        lif.close()
        raise InvalidImageError(source, "LIF file holds no images")
    chosen = scene or 0
    if not 0 <= chosen < len(images):
        lif.close()
        raise InvalidImageError(source, f"scene {chosen} is out of range 0..{len(images) - 1}")
    image = images[chosen]
    try:
        dims, sizes = tuple(image.dims), dict(image.sizes)
        names = _zcyx_axes(source, dims, sizes)
        coords = dict(image.coords)
        lambda_axis = next((d for d, n in names.items() if n == "C" and d in _LAMBDA_AXES), None)
        channel_names = (
            tuple(f"{float(v) * 1e9:g} nm" for v in coords[lambda_axis])
            if lambda_axis is not None and lambda_axis in coords
            else None
        )
        facts = {
            "n_scenes": len(images),
            "n_timepoints": sizes.get("T", 1),
            "shape_zcyx": tuple(
                int(np.prod([sizes[d] for d, n in names.items() if n == a], dtype=int))
                for a in "ZCYX"
            ),
            "dtype": np.dtype(image.dtype),
            "calibration": Calibration(
                pixel_size_um=_step_um(coords, "X"),
                z_step_um=_step_um(coords, "Z") if sizes.get("Z", 1) > 1 else None,
                channel_names=channel_names,
            ),
            "acquired_at": _acquired_at(image, lif),
        }
    except InvalidImageError:
        lif.close()
        raise
    except Exception as err:
        lif.close()
        raise InvalidImageError(source, f"LIF metadata cannot be read ({err})") from err

    def read(timepoint: int) -> np.ndarray:
        data = np.asarray(image.asarray())
        index = tuple(timepoint if d == "T" else 0 if names[d] == "" else slice(None) for d in dims)
        kept = [names[d] for d in dims if d != "T" and names[d] != ""]
        data = data[index]
        for axis in "ZC":
            if axis not in kept:
                data, kept = data[np.newaxis], [axis, *kept]
        return np.ascontiguousarray(data.transpose([kept.index(a) for a in "ZCYX"]))

    def time_of(timepoint: int) -> datetime | None:
        return _frame_time(image, dims, sizes, timepoint)

    return facts, read, lif.close, time_of
