"""Physical calibration of a TIFF: pixel size and z-step in µm, channel names.

Where each value comes from, first match wins:

- pixel size: OME ``PhysicalSizeX`` (with ``PhysicalSizeXUnit``, default µm); then the TIFF
  ``XResolution`` tag (pixels per unit) with ``ResolutionUnit`` inch or cm, or with no unit when
  ImageJ metadata names one (``unit=um``);
- z-step: OME ``PhysicalSizeZ`` (with ``PhysicalSizeZUnit``); then ImageJ ``spacing``;
- channel names: OME ``Channel/@Name`` (all channels must be named);
- acquisition time: OME ``Image/AcquisitionDate`` (ISO 8601, as written).

A value the file does not state is ``None``; nothing is guessed.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any

import tifffile

logger = logging.getLogger(__name__)

#: Length units as written by OME and ImageJ, in µm.
UNIT_TO_UM: dict[str, float] = {
    "m": 1e6,
    "cm": 1e4,
    "mm": 1e3,
    "µm": 1.0,
    "μm": 1.0,  # Greek mu
    "um": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "nm": 1e-3,
    "Å": 1e-4,
    "pm": 1e-6,
    "inch": 25400.0,
}

_RESOLUTION_UNIT_UM = {2: 25400.0, 3: 1e4}  # TIFF ResolutionUnit: 2 inch, 3 centimetre


@dataclass(frozen=True)
class Calibration:
    """Physical sizes (µm), channel names and acquisition time a file states; ``None`` if absent.

    ``acquired_at`` is ISO 8601 text as the file writes it (OME ``AcquisitionDate``).
    """

    pixel_size_um: float | None = None
    z_step_um: float | None = None
    channel_names: tuple[str, ...] | None = None
    acquired_at: str | None = None


def _to_um(value: Any, unit: str | None) -> float | None:
    try:
        size = float(value)
    except (TypeError, ValueError):
        return None
    factor = UNIT_TO_UM.get((unit or "µm").strip().replace("\\u00B5", "µ"))
    if factor is None or not size > 0:
        return None
    return size * factor


def _ome_image(ome_xml: str) -> ElementTree.Element | None:
    try:
        root = ElementTree.fromstring(ome_xml)
    except ElementTree.ParseError:
        logger.warning("OME-XML is not valid XML; ignoring its calibration")
        return None
    return root.find("{*}Image")


def _from_ome(ome_xml: str) -> Calibration:
    image = _ome_image(ome_xml)
    pixels = image.find("{*}Pixels") if image is not None else None
    if image is None or pixels is None:
        return Calibration()
    names = tuple(ch.get("Name", "") for ch in pixels.findall("{*}Channel"))
    acquired = (image.findtext("{*}AcquisitionDate") or "").strip()
    return Calibration(
        pixel_size_um=_to_um(pixels.get("PhysicalSizeX"), pixels.get("PhysicalSizeXUnit")),
        z_step_um=_to_um(pixels.get("PhysicalSizeZ"), pixels.get("PhysicalSizeZUnit")),
        channel_names=names if names and all(names) else None,
        acquired_at=acquired or None,
    )


def _from_resolution_tag(page: tifffile.TiffPage, imagej_unit: str | None) -> float | None:
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    numerator, denominator = tag.value
    if not numerator or not denominator:
        return None
    units_per_px = denominator / numerator
    unit_code = int(page.tags.valueof("ResolutionUnit", 2))
    if unit_code in _RESOLUTION_UNIT_UM:
        return units_per_px * _RESOLUTION_UNIT_UM[unit_code]
    return _to_um(units_per_px, imagej_unit) if imagej_unit else None


def read_calibration(tif: tifffile.TiffFile) -> Calibration:
    """Collect pixel size, z-step and channel names from an open TIFF.

    Parameters
    ----------
    tif : tifffile.TiffFile
        The open file; only its metadata is read.

    Returns
    -------
    Calibration
        Sizes in µm and the OME acquisition time, ``None`` where the file does not state them.
    """
    ome = _from_ome(tif.ome_metadata) if tif.is_ome and tif.ome_metadata else Calibration()
    imagej = tif.imagej_metadata or {}
    imagej_unit = imagej.get("unit")
    pixel_size_um = ome.pixel_size_um
    if pixel_size_um is None:
        pixel_size_um = _from_resolution_tag(tif.pages.first, imagej_unit)
    z_step_um = ome.z_step_um
    if z_step_um is None and "spacing" in imagej:
        z_step_um = _to_um(imagej["spacing"], imagej_unit)
    return Calibration(pixel_size_um, z_step_um, ome.channel_names, ome.acquired_at)
