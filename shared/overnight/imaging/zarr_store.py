"""Read an OME-Zarr (NGFF 0.4, and 0.5's ``zarr.json`` layout) image, lazily by chunk.

The store is a local folder (:func:`open_zarr`) or any of overnight's object stores, S3
included (:func:`open_zarr_in_store`: each chunk is one ``read_bytes`` of its object, fetched
when an index touches it, so only the chunks read cross the network).

An OME-Zarr image is a folder (``field.ome.zarr/``) holding a ``multiscales`` group; the first
dataset (``datasets[0]``, full resolution) is read. Axes come from ``multiscales[0].axes``
(``t``, ``c``, ``z``, ``y``, ``x`` in any subset), pixel size and z-step from its ``scale``
transformations and axis units, channel names from ``omero.channels[].label``.

Nothing is decoded when the store is opened: the declared shape is checked against
:class:`ReadLimits` first, then :func:`read_zarr` decodes only the chosen timepoint and
:func:`read_zarr_tile` only the chunks that overlap a Y/X window, so a store larger than RAM is
read tile by tile. Needs the optional ``zarr`` package (``pip install 'overnight[formats]'``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from overnight.errors import InvalidImageError
from overnight.imaging.axes import to_zcyx
from overnight.imaging.calibration import Calibration
from overnight.imaging.limits import (
    DEFAULT_LIMITS,
    ReadLimits,
    check_declared_size,
    check_pixel_type,
)
from overnight.imaging.zarr_object_store import object_store_zarr

if TYPE_CHECKING:
    from overnight.storage import ObjectStore

#: Folder name endings of an OME-Zarr image (any case).
ZARR_EXTENSIONS: tuple[str, ...] = (".ome.zarr", ".zarr")

# NGFF axis units (UDUNITS names) in µm.
_NGFF_UNIT_UM = {
    "meter": 1e6,
    "centimeter": 1e4,
    "millimeter": 1e3,
    "micrometer": 1.0,
    "nanometer": 1e-3,
    "angstrom": 1e-4,
}


def is_zarr_name(name: str) -> bool:
    """Whether ``name`` ends in ``.zarr`` / ``.ome.zarr`` (any case)."""
    return name.lower().rstrip("/").endswith(ZARR_EXTENSIONS)


@dataclass(frozen=True)
class ZarrImage:
    """An opened OME-Zarr image: the full-resolution array (lazy) and what the store declares."""

    source: str
    array: Any  # zarr.Array: indexing it decodes only the chunks it touches
    axes: str  # upper case, e.g. "TCZYX"
    calibration: Calibration
    ngff_version: str | None


def _multiscales(attrs: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], str | None]:
    ome = attrs.get("ome")
    if isinstance(ome, dict) and "multiscales" in ome:  # NGFF 0.5: attributes under "ome"
        return ome["multiscales"], ome, ome.get("version")
    multiscales = attrs.get("multiscales") or []
    version = multiscales[0].get("version") if multiscales else None
    return multiscales, attrs, version


def _scale(transforms: list[dict[str, Any]] | None, n_axes: int) -> list[float]:
    scale = [1.0] * n_axes
    for transform in transforms or []:
        if transform.get("type") == "scale" and len(transform.get("scale", [])) == n_axes:
            scale = [s * float(t) for s, t in zip(scale, transform["scale"], strict=True)]
    return scale


def _axis_um(axes: list[dict[str, Any]], scale: list[float], name: str) -> float | None:
    for axis, size in zip(axes, scale, strict=True):
        if axis.get("name", "").lower() == name:
            factor = _NGFF_UNIT_UM.get(str(axis.get("unit", "")).lower())
            return size * factor if factor is not None and size > 0 else None
    return None


def _import_zarr(source: str) -> Any:
    try:
        import zarr
    except ImportError as err:
        raise InvalidImageError(
            source,
            "reading OME-Zarr needs the optional package 'zarr', which is not installed: "
            "pip install 'overnight[formats]'",
        ) from err
    return zarr


def open_zarr(path: Path, *, limits: ReadLimits = DEFAULT_LIMITS) -> ZarrImage:
    """Open a local OME-Zarr image and check what it declares; decode nothing.

    Raises
    ------
    InvalidImageError
        Not a folder, ``zarr`` not installed, no ``multiscales`` metadata, axes that cannot be
        placed in ZCYX, unsupported pixel type, declared size beyond ``limits``.
    """
    source = str(path)
    if not path.is_dir():
        raise InvalidImageError(
            source, "OME-Zarr store not found" if not path.exists() else "is not a folder"
        )
    zarr = _import_zarr(source)
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as err:  # zarr raises its own errors for foreign folders
        raise InvalidImageError(source, f"is not a readable Zarr group ({err})") from err
    return _describe(source, group, limits)


def open_zarr_in_store(
    store: ObjectStore, prefix: str, *, limits: ReadLimits = DEFAULT_LIMITS
) -> ZarrImage:
    """Open the OME-Zarr image under ``prefix`` of an object store (S3, a folder); decode nothing.

    Only the metadata objects are read now; the array's chunks are read, one object each,
    when :func:`read_zarr` / :func:`read_zarr_tile` index them.

    Raises
    ------
    InvalidImageError
        As :func:`open_zarr`; ``source`` in messages is ``<store>/<prefix>``.
    """
    source = f"{store!r}/{prefix.strip('/')}"
    zarr = _import_zarr(source)
    try:
        group = zarr.open_group(store=object_store_zarr(store, prefix), mode="r")
    except Exception as err:  # no zarr.json / .zgroup under the prefix, or a foreign group
        raise InvalidImageError(source, f"is not a readable Zarr group ({err})") from err
    return _describe(source, group, limits)


def _describe(source: str, group: Any, limits: ReadLimits) -> ZarrImage:
    """Check the NGFF metadata and the full-resolution array of an open group."""
    import zarr

    try:
        attrs = dict(group.attrs)
    except Exception as err:
        raise InvalidImageError(source, f"Zarr attributes cannot be read ({err})") from err
    multiscales, ome, version = _multiscales(attrs)
    if not multiscales or not multiscales[0].get("datasets"):
        raise InvalidImageError(
            source,
            "is a Zarr group without OME-NGFF 'multiscales' metadata (not an OME-Zarr image)",
        )
    first = multiscales[0]
    axes_meta = [a if isinstance(a, dict) else {"name": a} for a in first.get("axes", [])]
    dataset = first["datasets"][0]
    try:
        array: Any = group[dataset["path"]]
        if not isinstance(array, zarr.Array):
            raise TypeError("it is a group, not an array")
    except Exception as err:
        raise InvalidImageError(
            source, f"multiscales dataset {dataset.get('path')!r} cannot be opened ({err})"
        ) from err
    axes = "".join(str(a.get("name", "?"))[:1] for a in axes_meta).upper() or None
    if axes is None:  # NGFF 0.1-0.3 without axes: always TCZYX
        axes = "TCZYX"[-array.ndim :]
        axes_meta = [{"name": a.lower()} for a in axes]
    shape = tuple(int(s) for s in array.shape)
    if len(axes) != len(shape) or not set(axes) <= set("TCZYX"):
        raise InvalidImageError(
            source, f"NGFF axes {axes!r} do not fit shape {shape} or are not among t, c, z, y, x"
        )
    check_pixel_type(source, np.dtype(array.dtype))
    if 0 in shape:
        raise InvalidImageError(source, f"declares an empty image (shape {shape})")
    check_declared_size(source, shape, np.dtype(array.dtype), limits, in_memory=False)
    scale = _scale(dataset.get("coordinateTransformations"), len(shape))
    top = _scale(first.get("coordinateTransformations"), len(shape))
    scale = [s * t for s, t in zip(scale, top, strict=True)]
    labels = [ch.get("label", "") for ch in (ome.get("omero") or {}).get("channels", [])]
    calibration = Calibration(
        pixel_size_um=_axis_um(axes_meta, scale, "x"),
        z_step_um=_axis_um(axes_meta, scale, "z") if "Z" in axes else None,
        channel_names=tuple(labels) if labels and all(labels) else None,
    )
    return ZarrImage(source, array, axes, calibration, version)


def _timepoint_index(image: ZarrImage, timepoint: int | None) -> tuple[tuple[Any, ...], str]:
    """Index that keeps one timepoint (checked by ``to_zcyx``'s rules), and the axes left."""
    if "T" not in image.axes:
        if timepoint not in (None, 0):
            raise InvalidImageError(
                image.source, f"has no T axis; timepoint {timepoint} does not exist"
            )
        return tuple(slice(None) for _ in image.axes), image.axes
    n_t = int(image.array.shape[image.axes.index("T")])
    if timepoint is None and n_t > 1:
        raise InvalidImageError(
            image.source,
            f"has {n_t} timepoints (T axis); several timepoints are read one at a time "
            f"(timepoint=0..{n_t - 1})",
        )
    t = timepoint or 0
    if not 0 <= t < n_t:
        raise InvalidImageError(image.source, f"timepoint {t} is out of range 0..{n_t - 1}")
    index = tuple(t if a == "T" else slice(None) for a in image.axes)
    return index, image.axes.replace("T", "")


def timepoint_shape_zcyx(image: ZarrImage, timepoint: int | None) -> tuple[int, int, int, int]:
    """``(Z, C, Y, X)`` sizes of one timepoint of ``image``, checked as :func:`read_zarr` does.

    Raises :class:`InvalidImageError` for several timepoints and no ``timepoint``, or one out
    of range.
    """
    index, kept = _timepoint_index(image, timepoint)
    shape = [n for n, i in zip(image.array.shape, index, strict=True) if isinstance(i, slice)]
    sizes = dict(zip(kept, shape, strict=True))
    z, c, y, x = (int(sizes.get(a, 1)) for a in "ZCYX")
    return z, c, y, x


def zarr_tile_reader(
    image: ZarrImage, *, limits: ReadLimits = DEFAULT_LIMITS, timepoint: int | None = None
) -> Callable[[slice, slice], np.ndarray]:
    """A reader of ``(ys, xs)`` windows (px) of one timepoint of the opened ``image``, ``ZCYX``.

    Each call is :func:`read_zarr_tile` on the image opened once (a local folder or an object
    store): only the chunks the window overlaps are fetched. The timepoint is checked now.
    """
    _timepoint_index(image, timepoint)

    def read(ys: slice, xs: slice) -> np.ndarray:
        return read_zarr_tile(image, (ys, xs), limits=limits, timepoint=timepoint)

    return read


def _decode(image: ZarrImage, index: tuple[Any, ...]) -> np.ndarray:
    try:
        return np.asarray(image.array[index])
    except Exception as err:  # a missing codec, a corrupt chunk
        raise InvalidImageError(image.source, f"Zarr chunks cannot be decoded ({err})") from err


def read_zarr(
    path: Path | ZarrImage, *, limits: ReadLimits = DEFAULT_LIMITS, timepoint: int | None = None
) -> tuple[np.ndarray, ZarrImage]:
    """Decode one timepoint of an OME-Zarr image as ``ZCYX`` (in memory, within ``limits``).

    ``path`` is a local store, or an image opened by :func:`open_zarr_in_store`.

    Returns
    -------
    data : ndarray of shape (Z, C, Y, X)
    image : ZarrImage
        The opened store (axes, calibration, NGFF version).
    """
    image = path if isinstance(path, ZarrImage) else open_zarr(path, limits=limits)
    index, kept = _timepoint_index(image, timepoint)
    selected = [n for n, i in zip(image.array.shape, index, strict=True) if isinstance(i, slice)]
    check_declared_size(image.source, selected, np.dtype(image.array.dtype), limits, in_memory=True)
    data = to_zcyx(_decode(image, index), kept, source=image.source)
    return data, image


def read_zarr_tile(
    path: Path | ZarrImage,
    window: tuple[slice, slice],
    *,
    limits: ReadLimits = DEFAULT_LIMITS,
    timepoint: int | None = None,
) -> np.ndarray:
    """Decode the Y/X ``window`` of one timepoint as ``ZCYX``; only the chunks it overlaps are read.

    Raises
    ------
    ValueError
        When the window is empty or outside the image.
    InvalidImageError
        As in :func:`read_zarr`.
    """
    image = path if isinstance(path, ZarrImage) else open_zarr(path, limits=limits)
    index, kept = _timepoint_index(image, timepoint)
    height = int(image.array.shape[image.axes.index("Y")])
    width = int(image.array.shape[image.axes.index("X")])
    ys, xs = window
    if not (0 <= ys.start < ys.stop <= height and 0 <= xs.start < xs.stop <= width):
        raise ValueError(
            f"{image.source}: tile [{ys.start}:{ys.stop}, {xs.start}:{xs.stop}] is empty or "
            f"outside the image ({height}x{width} px)"
        )
    index = tuple(
        ys if a == "Y" else xs if a == "X" else i for a, i in zip(image.axes, index, strict=True)
    )
    window_shape = [
        (i.stop - i.start) if a in "YX" else n
        for a, n, i in zip(image.axes, image.array.shape, index, strict=True)
        if isinstance(i, slice)
    ]
    check_declared_size(
        image.source, window_shape, np.dtype(image.array.dtype), limits, in_memory=True, what="tile"
    )
    return np.ascontiguousarray(to_zcyx(_decode(image, index), kept, source=image.source))
