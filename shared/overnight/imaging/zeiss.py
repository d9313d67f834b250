"""Read Zeiss ``.czi`` files through `aicspylibczi <https://github.com/AllenCellModeling/aicspylibczi>`_.

aicspylibczi (Allen Institute, GPL-3.0) wraps Zeiss's libCZI and reads one plane (or one
mosaic plane) at a time, so only the chosen scene and timepoint are decoded. A build that
bundles it is GPL-3.0, so it is in the ``formats`` extra and not in the worker image.

A CZI file's scenes (``S``) may differ in size. aicspylibczi's ``get_dims_shape`` then gives
one layout per group of same-sized scenes (each with its ``S`` range); :func:`czi_scene_layouts`
gives every scene its own, and each scene is read with its own shape. Scenes of a size other
than the first are read through ``read_mosaic`` over the scene's bounding box:
aicspylibczi 4.0.1's ``read_image`` returns the right pixels for them but writes past its
buffer (glibc aborts the process with ``free(): invalid next size``), found with
``tests/data/vendor/two_scenes_different_sizes.czi``.

A mosaic (tiles, ``M``) with one scene is stitched over the whole mosaic's bounding box; a
mosaic with several scenes (slide scanners, tile scans of several positions) is one image per
scene, each stitched over that scene's own bounding box (``read_mosaic`` takes no ``S``; the
region picks the scene, so scenes that overlap in the plane are refused), found with
``tests/data/vendor/scene_mosaics.czi``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from overnight.errors import InvalidImageError
from overnight.imaging.calibration import Calibration

#: One aicspylibczi layout: axis letter → ``(start, stop)``.
Layout = dict[str, tuple[int, int]]

# CZI pixel types that are single-sample unsigned integers.
_CZI_DTYPES: dict[str, np.dtype] = {"gray8": np.dtype("uint8"), "gray16": np.dtype("uint16")}


def iso_time(value: str | None) -> str | None:
    """ISO 8601 text of a vendor time stamp (CZI writes 7 fractional digits), as written if odd."""
    if not value:
        return None
    text = value.strip()
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        return text


def czi_scene_layouts(source: str, layouts: list[Layout]) -> list[Layout]:
    """Every scene's own layout, in scene order, from aicspylibczi's ``get_dims_shape()``.

    Parameters
    ----------
    source : str
        The file, for messages.
    layouts : list of dict
        One dict per group of same-sized scenes, ``{"S": (start, stop), "Y": (0, h), ...}``;
        a file without an ``S`` axis has one layout and one scene.

    Returns
    -------
    list of dict
        One layout per scene (scene ``i`` is ``S = first start + i``), each with ``S`` set to
        that scene alone.

    Raises
    ------
    InvalidImageError
        When the layouts' scene ranges overlap or leave a scene out.

    Examples
    --------
    >>> small = {"S": (0, 2), "Y": (0, 40), "X": (0, 64)}
    >>> large = {"S": (2, 3), "Y": (0, 56), "X": (0, 48)}
    >>> [(d["S"], d["Y"]) for d in czi_scene_layouts("a.czi", [small, large])]
    [((0, 1), (0, 40)), ((1, 2), (0, 40)), ((2, 3), (0, 56))]
    """
    if len(layouts) == 1 and "S" not in layouts[0]:
        return [dict(layouts[0])]
    by_scene: dict[int, Layout] = {}
    for layout in layouts:
        start, stop = layout.get("S", (0, 1))
        for s in range(start, stop):
            if s in by_scene:
                raise InvalidImageError(source, f"CZI scene {s} has two layouts ({layouts})")
            by_scene[s] = {**layout, "S": (s, s + 1)}
    first = min(by_scene)
    if sorted(by_scene) != list(range(first, first + len(by_scene))):
        raise InvalidImageError(source, f"CZI scenes {sorted(by_scene)} are not contiguous")
    return [by_scene[s] for s in sorted(by_scene)]


def _size(layout: Layout, axis: str) -> int:
    start, stop = layout.get(axis, (0, 1))
    return stop - start


def _czi_calibration(meta: Any) -> tuple[Calibration, str | None]:
    scaling = {}
    for item in meta.findall(".//Scaling/Items/Distance"):
        try:
            scaling[item.get("Id")] = float(item.findtext("Value")) * 1e6  # metres → µm
        except (TypeError, ValueError):
            continue
    names = tuple(
        ch.get("Name") or ""
        for ch in meta.findall(".//Information/Image/Dimensions/Channels/Channel")
    )
    calibration = Calibration(
        pixel_size_um=scaling.get("X"),
        z_step_um=scaling.get("Z"),
        channel_names=names if names and all(names) else None,
    )
    return calibration, iso_time(meta.findtext(".//Information/Image/AcquisitionDateAndTime"))


def _czi_extra_axes(source: str, layout: Layout) -> None:
    for axis, (start, stop) in layout.items():
        if axis not in "SZCTYXMB" and stop - start > 1:
            raise InvalidImageError(
                source,
                f"CZI axis {axis} has {stop - start} entries (phases, views, illuminations or "
                "rotations); only scenes (S), timepoints (T), Z, C and mosaic tiles are read",
            )


#: A box in the plane, ``(x, y, w, h)`` in px (x, y: the top-left corner).
Box = tuple[int, int, int, int]


def _xywh(bbox: Any) -> Box:
    """An aicspylibczi ``BBox`` as ``(x, y, w, h)`` (px)."""
    return int(bbox.x), int(bbox.y), int(bbox.w), int(bbox.h)


def _overlapping(boxes: list[Box], scene: int) -> int | None:
    """The first scene whose box shares a pixel with ``boxes[scene]``; None when none does.

    Examples
    --------
    >>> _overlapping([(0, 0, 10, 10), (10, 0, 5, 5), (9, 9, 2, 2)], 0)
    2
    >>> _overlapping([(0, 0, 10, 10), (10, 0, 5, 5)], 1) is None
    True
    """
    x, y, w, h = boxes[scene]
    for other, (bx, by, bw, bh) in enumerate(boxes):
        if other != scene and x < bx + bw and bx < x + w and y < by + bh and by < y + h:
            return other
    return None


def _scene_box(czi: Any, source: str, scenes: list[Layout], scene: int) -> Box:
    """``(x, y, w, h)`` of one scene of a file whose scenes differ in size; refuse overlaps."""
    boxes = [_xywh(czi.get_scene_bounding_box(layout["S"][0])) for layout in scenes]
    x, y, w, h = boxes[scene]
    if (h, w) != (_size(scenes[scene], "Y"), _size(scenes[scene], "X")):
        raise InvalidImageError(
            source,
            f"CZI scene {scene} spans {w} x {h} px but its planes are declared "
            f"{_size(scenes[scene], 'X')} x {_size(scenes[scene], 'Y')} px",
        )
    other = _overlapping(boxes, scene)
    if other is not None:
        raise InvalidImageError(
            source,
            f"CZI scenes {scene} and {other} differ in size and overlap in the plane; "
            "they cannot be read apart",
        )
    return x, y, w, h


def _mosaic_scene_box(czi: Any, source: str, scenes: list[Layout], scene: int) -> Box:
    """``(x, y, w, h)`` (px) of one scene of a mosaic with several scenes; refuse overlaps.

    The box is the union of the scene's tiles (``get_mosaic_scene_bounding_box``), in the
    file's plane coordinates, as ``read_mosaic(region=...)`` takes it.
    """
    boxes = [_xywh(czi.get_mosaic_scene_bounding_box(index=lay["S"][0])) for lay in scenes]
    other = _overlapping(boxes, scene)
    if other is not None:
        raise InvalidImageError(
            source,
            f"CZI mosaic scenes {scene} and {other} overlap in the plane "
            f"({boxes[scene]} and {boxes[other]}, x, y, w, h px); they cannot be read apart",
        )
    return boxes[scene]


def _subblock_time(czi: Any, index: dict[str, int]) -> datetime | None:
    """``AcquisitionTime`` of the first subblock at ``index`` (None when it has none)."""
    try:
        found = czi.read_subblock_metadata(**index)
        text = ElementTree.fromstring(found[0][1]).findtext(".//AcquisitionTime")
        return datetime.fromisoformat(text.strip()) if text else None
    except Exception:  # noqa: BLE001 - a subblock without metadata: no time
        return None


def open_czi(
    path: Path, scene: int | None
) -> tuple[dict[str, Any], Callable[[int], np.ndarray], Callable[[int], datetime | None]]:
    """Describe one scene (``scene``; None: the first) of a ``.czi`` file, decoding nothing.

    Returns
    -------
    facts : dict
        ``n_scenes``, ``n_timepoints``, ``shape_zcyx`` (of this scene), ``dtype``,
        ``calibration``, ``acquired_at`` (keyword arguments of ``VendorInfo`` less ``source``).
    read : callable
        ``read(timepoint)`` → this scene at that timepoint as ``ZCYX``, plane by plane.
    time_of : callable
        ``time_of(timepoint)`` → when its first plane was taken (the subblock's
        ``AcquisitionTime``), None when not stated.

    Raises
    ------
    InvalidImageError
        aicspylibczi not installed, not a CZI file, unsupported pixel type or axes, scene out
        of range, scenes of different sizes (or mosaic scenes) that overlap in the plane.

    Notes
    -----
    A mosaic's scene is ``shape_zcyx`` of its own bounding box (the union of its tiles); each
    plane is stitched by ``read_mosaic`` at full scale, one scene and timepoint at a time.
    """
    source = str(path)
    try:
        import aicspylibczi
    except ImportError as err:
        raise InvalidImageError(
            source,
            "reading .czi files needs the optional package 'aicspylibczi', which is not "
            "installed: pip install 'overnight[formats]'",
        ) from err
    try:
        czi = aicspylibczi.CziFile(path)
        pixel_type = czi.pixel_type
        layouts = czi.get_dims_shape()
        mosaic = czi.is_mosaic()
        meta = czi.meta
    except Exception as err:  # libCZI raises its own exception types for damaged files
        raise InvalidImageError(source, f"is not a readable CZI file ({err})") from err
    if pixel_type not in _CZI_DTYPES:
        raise InvalidImageError(
            source,
            f"CZI pixel type {pixel_type} is not supported; expected grey unsigned integers "
            f"({'/'.join(_CZI_DTYPES)})",
        )
    scenes = czi_scene_layouts(source, layouts)
    for layout in scenes:
        _czi_extra_axes(source, layout)
    chosen = scene or 0
    if not 0 <= chosen < len(scenes):
        raise InvalidImageError(source, f"scene {chosen} is out of range 0..{len(scenes) - 1}")
    dims = scenes[chosen]
    box: Box | None = None
    if mosaic and len(scenes) > 1:  # each scene stitched over its own box
        box = _mosaic_scene_box(czi, source, scenes, chosen)
        width, height = box[2], box[3]
    elif mosaic:
        bounds = czi.get_mosaic_bounding_box()
        height, width = int(bounds.h), int(bounds.w)
    else:
        height, width = _size(dims, "Y"), _size(dims, "X")
        if len(layouts) > 1:
            box = _scene_box(czi, source, scenes, chosen)
    calibration, acquired_at = _czi_calibration(meta)
    z_size, c_size = _size(dims, "Z"), _size(dims, "C")
    facts = {
        "n_scenes": len(scenes),
        "n_timepoints": _size(dims, "T"),
        "shape_zcyx": (z_size, c_size, height, width),
        "dtype": _CZI_DTYPES[pixel_type],
        "calibration": calibration,
        "acquired_at": acquired_at,
    }

    def read(timepoint: int) -> np.ndarray:
        planes = np.empty((z_size, c_size, height, width), _CZI_DTYPES[pixel_type])
        offsets = {a: dims.get(a, (0, 1))[0] for a in "SZCT"}
        for z in range(z_size):
            for c in range(c_size):
                index = {
                    "Z": z + offsets["Z"],
                    "C": c + offsets["C"],
                    "T": timepoint + offsets["T"],
                }
                index = {k: v for k, v in index.items() if k in dims}
                if box is not None:  # a mosaic's scene, or one read_image overflows on
                    plane = czi.read_mosaic(region=box, scale_factor=1.0, **index)
                elif mosaic:
                    plane = czi.read_mosaic(scale_factor=1.0, **index)
                else:
                    if "S" in dims:
                        index["S"] = offsets["S"]
                    plane, _ = czi.read_image(**index)
                planes[z, c] = np.asarray(plane).reshape(height, width)
        return planes

    def time_of(timepoint: int) -> datetime | None:
        offsets = {a: dims.get(a, (0, 1))[0] for a in "SZCT"}
        index = {"Z": offsets["Z"], "C": offsets["C"], "T": timepoint + offsets["T"]}
        if "S" in dims and (not mosaic or len(scenes) > 1):
            index["S"] = offsets["S"]
        return _subblock_time(czi, {k: v for k, v in index.items() if k in dims})

    return facts, read, time_of
