"""Find the stacks of one skin time series and order them by time and depth.

A series is read from either

- a folder of TIFFs: one ``ZCYX`` stack per timepoint, or one file per timepoint × depth
  (planes with the same time are stacked by depth), in any order and with any names; or
- one file with a T axis (``TCZYX``).

Where time and depth come from, first match wins:

- time (min after dosing): a sidecar's ``time_min`` (``<image_id>.json``, as
  :mod:`overnight.synth.skin` writes it, or the convention's ``<file>.json`` /
  ``<image_id>.meta.json``); the ``timepoint``/``t`` field of the name or of those sidecars
  (``t-035min``, ``timepoint-1.5h``); for a T axis a sidecar's ``times_min`` list or the OME
  ``Plane/@DeltaT`` (s); else the T index, with a warning;
- depth (µm below the surface) of plane z: a sidecar's ``depths_um`` list; else the name's
  ``depth-``/``z-`` field plus ``z · z-step`` (z-step from OME/ImageJ); else ``z · z-step``;
  else ``z`` µm, with a warning.

A file whose metadata cannot be read becomes a :class:`SeriesProblem`, not an exception: the
rest of the series is still analysed.
"""

from __future__ import annotations

import json
import logging
import re
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from overnight.errors import InvalidImageError, MetadataError, NoImagesError
from overnight.imaging import find_images, image_id_from_name, read_info, read_stack
from overnight.metadata import (
    TIME_UNITS_MIN,
    depth_um,
    metadata_for,
    numeric_field,
    timepoint_min,
)

logger = logging.getLogger(__name__)

#: Channels a skin stack needs: 0 = structure (CH₂), 1 = drug.
CHANNEL_ROLES: tuple[str, str] = ("structure", "drug")
_DEPTH_TOKEN = re.compile(r"_(?:depth|z)-[^_]+")


@dataclass(frozen=True)
class PlaneSource:
    """Where one plane lives: the file, its z index and (for a T axis) its timepoint index."""

    path: Path
    z_index: int
    t_index: int | None = None


@dataclass(frozen=True)
class Timepoint:
    """One timepoint of the series: planes in increasing depth.

    Attributes
    ----------
    image_id : str
        Name of the timepoint's result (the file's ``image_id`` for one stack per timepoint).
    time_min : float
        Minutes after dosing.
    depths_um : tuple of float
        Depth of each plane below the surface (µm), increasing.
    planes : tuple of PlaneSource
        One per depth, same order.
    pixel_size_um : float, optional
        Pixel size stated by the sidecar or the file (µm); ``None`` when neither says.
    """

    image_id: str
    time_min: float
    depths_um: tuple[float, ...]
    planes: tuple[PlaneSource, ...]
    pixel_size_um: float | None = None

    @property
    def sources(self) -> tuple[str, ...]:
        """The files this timepoint is read from, in order of first use."""
        return tuple(dict.fromkeys(str(p.path) for p in self.planes))


@dataclass(frozen=True)
class SeriesProblem:
    """A file left out of the series and why."""

    source: str
    reason: str


@dataclass(frozen=True)
class SkinSeries:
    """The ordered timepoints of one skin sample, with what was guessed or left out."""

    timepoints: tuple[Timepoint, ...]
    warnings: tuple[str, ...] = ()
    problems: tuple[SeriesProblem, ...] = ()


@dataclass(frozen=True)
class _FilePlanes:
    image_id: str
    time_min: float
    depths_um: tuple[float, ...]
    planes: tuple[PlaneSource, ...]
    pixel_size_um: float | None


def _own_sidecar(path: Path) -> dict[str, object]:
    """The ``<image_id>.json`` object written beside synthetic stacks (``{}`` when absent)."""
    sidecar = path.with_name(image_id_from_name(path.name) + ".json")
    if not sidecar.is_file():
        return {}
    try:
        content = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MetadataError(f"{sidecar.name}: not readable JSON ({err})") from err
    return content if isinstance(content, dict) else {}


def _number_list(value: object, key: str, length: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != length:
        raise MetadataError(f"sidecar {key} must be a list of {length} numbers, got {value!r}")
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise MetadataError(f"sidecar {key} holds a non-number: {value!r}") from err


def _ome_times_min(path: Path, n_t: int) -> tuple[float, ...] | None:
    """Times (min) of each T index from OME ``Plane/@DeltaT`` (seconds unless stated)."""
    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    if not xml:
        return None
    try:
        elements = list(ElementTree.fromstring(xml).iter())
    except ElementTree.ParseError:
        logger.warning("%s: OME metadata is not valid XML; times not read from it", path.name)
        return None
    times: dict[int, float] = {}
    for element in elements:
        if element.tag.endswith("Plane") and "DeltaT" in element.attrib:
            unit = element.attrib.get("DeltaTUnit", "s")
            scale = {"s": 1 / 60, "ms": 1 / 60000, "min": 1.0, "h": 60.0}.get(unit)
            if scale is not None:
                t = int(element.attrib.get("TheT", 0))
                times.setdefault(t, float(element.attrib["DeltaT"]) * scale)
    return tuple(times[t] for t in range(n_t)) if len(times) >= n_t else None


def _depths(
    n_z: int, sidecar: dict[str, object], fields: dict[str, str], z_step: float | None, name: str
) -> tuple[tuple[float, ...], str | None]:
    listed = _number_list(sidecar.get("depths_um"), "depths_um", n_z)
    if listed is not None:
        return listed, None
    first = depth_um(fields)
    if n_z == 1 and first is not None:
        return (first,), None
    if z_step is not None:
        return tuple((first or 0.0) + z * z_step for z in range(n_z)), None
    guess = tuple((first or 0.0) + float(z) for z in range(n_z))
    return guess, f"{name}: no depth in sidecar, name or file; planes taken as 1 µm apart"


def _file_planes(path: Path) -> tuple[list[_FilePlanes], list[str]]:
    """The timepoints one file contributes, with warnings; raises on unreadable metadata."""
    info = read_info(path, timepoint=0)  # 0 is valid with or without a T axis
    meta = metadata_for(path)
    sidecar = _own_sidecar(path)
    fields = dict(meta.fields)
    image_id = image_id_from_name(path.name)
    n_z = info.shape_zcyx[0]
    warnings = list(meta.warnings)
    depths, warning = _depths(n_z, sidecar, fields, info.calibration.z_step_um, path.name)
    warnings += [warning] if warning else []
    stated = sidecar.get("pixel_size_um")
    pixel_um = float(stated) if isinstance(stated, int | float) else info.calibration.pixel_size_um
    n_t = info.file_shape[info.file_axes.index("T")] if "T" in info.file_axes else 1
    if n_t == 1:
        time = sidecar.get("time_min")
        if not isinstance(time, int | float) and "time_min" in fields:  # a convention sidecar
            time = numeric_field(fields, "time_min", TIME_UNITS_MIN)
        time_min = float(time) if isinstance(time, int | float) else timepoint_min(fields)
        if time_min is None:
            raise MetadataError(
                "no time: name it ..._t-30min.tif (or timepoint-30min), or add a sidecar "
                f"{image_id}.json with time_min"
            )
        planes = tuple(PlaneSource(path, z) for z in range(n_z))
        return [_FilePlanes(image_id, time_min, depths, planes, pixel_um)], warnings
    times = _number_list(sidecar.get("times_min"), "times_min", n_t) or _ome_times_min(path, n_t)
    if times is None:
        times = tuple(float(t) for t in range(n_t))
        warnings.append(f"{path.name}: no times in a sidecar or OME; T index taken as minutes")
    return [
        _FilePlanes(
            f"{image_id}_t{t:03d}",
            times[t],
            depths,
            tuple(PlaneSource(path, z, t) for z in range(n_z)),
            pixel_um,
        )
        for t in range(n_t)
    ], warnings


def _merge_time(parts: list[_FilePlanes], warnings: list[str]) -> Timepoint:
    """One timepoint from the files sharing its time: planes by depth, the first of a depth kept."""
    pairs = sorted(
        ((d, p) for part in parts for d, p in zip(part.depths_um, part.planes, strict=True)),
        key=lambda pair: pair[0],
    )
    kept: dict[float, PlaneSource] = {}
    for depth, plane in pairs:
        if depth in kept:
            warnings.append(
                f"{plane.path.name}: a second plane at {depth} µm, "
                f"t = {parts[0].time_min} min; ignored"
            )
        else:
            kept[depth] = plane
    first = min(parts, key=lambda part: part.depths_um[0])
    image_id = first.image_id if len(parts) == 1 else _DEPTH_TOKEN.sub("", first.image_id)
    pixel_um = next((part.pixel_size_um for part in parts if part.pixel_size_um), None)
    return Timepoint(image_id, parts[0].time_min, tuple(kept), tuple(kept.values()), pixel_um)


def find_series(source: Path) -> SkinSeries:
    """Index the timepoints of a folder of stacks or of one ``TCZYX`` file, in time order.

    Parameters
    ----------
    source : Path
        A folder (searched recursively, as :func:`overnight.imaging.find_images`; a dataset
        folder with an ``images/`` subfolder, as the generator writes, is read from there)
        or one file.

    Returns
    -------
    SkinSeries
        Timepoints sorted by time; files whose header or metadata cannot be read are in
        ``problems``.

    Raises
    ------
    NoImagesError
        When ``source`` holds no image, or none that could be placed in time.
    """
    if source.is_dir() and (source / "images").is_dir():
        source = source / "images"
    paths = [source] if source.is_file() else find_images(source) if source.is_dir() else []
    if not paths:
        raise NoImagesError(f"no TIFF stacks found in {source}")
    warnings: list[str] = []
    problems: list[SeriesProblem] = []
    by_time: dict[float, list[_FilePlanes]] = defaultdict(list)
    for path in paths:
        try:
            parts, file_warnings = _file_planes(path)
        except (InvalidImageError, MetadataError) as err:
            problems.append(SeriesProblem(str(path), str(err)))
            logger.warning("%s left out of the series: %s", path, err)
            continue
        warnings += file_warnings
        for part in parts:
            by_time[round(part.time_min, 6)].append(part)
    if not by_time:
        raise NoImagesError(
            f"no stack in {source} could be placed in the series: "
            + "; ".join(f"{p.source}: {p.reason}" for p in problems)
        )
    timepoints = tuple(_merge_time(by_time[t], warnings) for t in sorted(by_time))
    ids = [tp.image_id for tp in timepoints]
    if len(set(ids)) != len(ids):
        timepoints = tuple(
            Timepoint(
                f"{tp.image_id}_t-{tp.time_min:g}min",
                tp.time_min,
                tp.depths_um,
                tp.planes,
                tp.pixel_size_um,
            )
            for tp in timepoints
        )
    return SkinSeries(timepoints, tuple(warnings), tuple(problems))


def read_timepoint(timepoint: Timepoint) -> np.ndarray:
    """The ``ZCYX`` pixels of one timepoint (planes in depth order), at least 2 channels.

    Raises
    ------
    InvalidImageError
        When a file cannot be read, has fewer than 2 channels, or the planes differ in shape.
    """
    stacks: dict[tuple[Path, int | None], np.ndarray] = {}
    planes = []
    for plane in timepoint.planes:
        key = (plane.path, plane.t_index)
        if key not in stacks:
            stacks[key] = read_stack(
                plane.path,
                timepoint=plane.t_index,
                channels_required=2,
                channel_roles=CHANNEL_ROLES,
            ).data
        planes.append(np.asarray(stacks[key][plane.z_index]))
    shapes = {p.shape for p in planes}
    if len(shapes) > 1:
        raise InvalidImageError(
            ", ".join(timepoint.sources),
            f"planes of t = {timepoint.time_min} min differ in shape {sorted(shapes)}",
        )
    return np.stack(planes)
