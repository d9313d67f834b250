"""Metadata from file and folder names: the lab's naming convention, plus optional sidecars.

The convention
--------------
An image's name holds ``_``-separated fields, five fixed ones and then any number of
``key-value`` fields, before the extension (``.tif``, ``.tiff``, ``.ome.tif``, ``.ome.tiff``)::

    <YYYYMMDD>_<HHMM[SS]>_<user>_<instrument>_<sample>[_<key>-<value>]...

    20261125_0930_jdoe_darkfield1_S03.ome.tif
    20261125_093015_jdoe_darkfield1_S03_field-007.tif
    20261125_0930_jdoe_darkfield1_S03_drug-ruxolitinib_dose-10uM_field-007.ome.tif
    20261125_1412_amir_srs2_skin4_drug-rux_formulation-transcutol_timepoint-30min_depth-20um.tif

- ``date``: acquisition date, 8 digits, a real calendar date (``20261345`` is not);
- ``time``: acquisition time of day, ``HHMM`` or ``HHMMSS``, 24 h;
- ``user``, ``instrument``, ``sample``: letters and digits only (no ``-`` or ``_``);
- ``key-value``: anything else worth recording (drug, dose, formulation, depth, timepoint, field,
  replicate, ...). The key is lower case, ``[a-z][a-z0-9]*``; the value is everything after the
  FIRST ``-`` and may itself hold ``-`` (``conc-1-2mM`` gives ``conc = "1-2mM"``) but never
  ``_``, ``/`` or spaces. A key appears once. The five fixed names (``date``, ``time``, ``user``,
  ``instrument``, ``sample``) cannot be keys: write ``timepoint-30min``, not ``time-30min``.

Folders: a folder whose name consists only of ``key-value`` fields, e.g.
``drug-rux_formulation-transcutol/``, adds those fields to every image inside it. Only the
image's own folder counts, or with ``root=`` every folder between ``root`` and the image
(inner folders override outer ones). Other folder names are ignored silently.

Sidecars: ``<image file name>.json`` (``a.ome.tif.json``) and then ``<image_id>.meta.json``
(``a.meta.json``) next to the image may hold a flat JSON object of extra or overriding fields,
``{"drug": "ruxolitinib", "dose": "10uM"}``; numbers and booleans are kept as their JSON text.

Precedence, lowest first: folders, the file name, ``<file>.json``, ``<image_id>.meta.json``.

A name that does not follow the convention is not an error: :func:`metadata_for` returns no
parsed name and one warning that says why, and the pipeline records it in ``result.json``.

Numbers with units: :func:`numeric_field` reads values such as ``timepoint-30min``,
``t-1.5h`` (90 min) and ``depth-20um`` / ``z-0.02mm`` (20 µm); :func:`timepoint_min` and
:func:`depth_um` do it for the usual keys. A bare number is in the default unit (min, µm).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from overnight.errors import MetadataError
from overnight.imaging.files import image_id_from_name

logger = logging.getLogger(__name__)

CONVENTION = "<YYYYMMDD>_<HHMM[SS]>_<user>_<instrument>_<sample>[_<key>-<value>]..."
#: The fixed fields in file-name order: the first columns of ``ImageMetadata.as_flat_dict()``.
FIXED_FIELDS: tuple[str, ...] = ("date", "time", "user", "instrument", "sample")

_TOKEN = r"[A-Za-z0-9]+"
_KEY_RE = re.compile(r"[a-z][a-z0-9]*")
_VALUE_RE = re.compile(r"[^_\s/\\]+")
_SIDECAR_KEY_RE = re.compile(r"[a-z][a-z0-9_]*")
_NUMBER_RE = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))(\D*)")

#: Time units for :func:`timepoint_min`, in minutes ("" = a bare number).
TIME_UNITS_MIN: dict[str, float] = {"": 1.0, "min": 1.0, "s": 1 / 60, "sec": 1 / 60, "h": 60.0}
#: Length units for :func:`depth_um`, in µm ("" = a bare number).
DEPTH_UNITS_UM: dict[str, float] = {"": 1.0, "um": 1.0, "µm": 1.0, "nm": 1e-3, "mm": 1e3}
TIMEPOINT_KEYS: tuple[str, ...] = ("timepoint", "t")
DEPTH_KEYS: tuple[str, ...] = ("depth", "z")


class ImageMetadata(BaseModel):
    """The fields of a name that follows the convention (see the module docstring).

    Examples
    --------
    >>> meta = parse_name("20261125_0930_jdoe_darkfield1_S03_drug-rux_dose-10uM.ome.tif")
    >>> meta.as_flat_dict()["dose"]
    '10uM'
    >>> format_name(meta)
    '20261125_0930_jdoe_darkfield1_S03_drug-rux_dose-10uM'
    """

    model_config = ConfigDict(frozen=True)

    date: dt.date
    time: dt.time
    user: str = Field(pattern=f"^{_TOKEN}$")
    instrument: str = Field(pattern=f"^{_TOKEN}$")
    sample: str = Field(pattern=f"^{_TOKEN}$")
    extra: dict[str, str] = Field(default_factory=dict)

    @field_validator("time")
    @classmethod
    def _whole_seconds(cls, value: dt.time) -> dt.time:
        if value.microsecond or value.tzinfo is not None:
            raise ValueError("time must be whole seconds without a time zone")
        return value

    @field_validator("extra")
    @classmethod
    def _valid_extra(cls, extra: dict[str, str]) -> dict[str, str]:
        for key, value in extra.items():
            problem = _extra_problem(key, value)
            if problem:
                raise ValueError(problem)
        return extra

    def as_flat_dict(self) -> dict[str, str]:
        """Columns ``date, time, user, instrument, sample`` (ISO text) then the extra keys."""
        return {
            "date": self.date.isoformat(),
            "time": self.time.isoformat(),
            "user": self.user,
            "instrument": self.instrument,
            "sample": self.sample,
            **self.extra,
        }


class ResolvedMetadata(BaseModel):
    """Everything known about one image from its name, folders and sidecars.

    Attributes
    ----------
    parsed : ImageMetadata or None
        The file name's fields; None when the name does not follow the convention.
    fields : dict of str to str
        Flat columns after folders, name and sidecars are merged (see the module docstring).
    warnings : tuple of str
        One line per problem (name off-convention, unreadable sidecar), each naming the file.
    """

    model_config = ConfigDict(frozen=True)

    parsed: ImageMetadata | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def _extra_problem(key: str, value: str) -> str | None:
    if not _KEY_RE.fullmatch(key):
        return f"key {key!r} must be lower-case letters and digits, starting with a letter"
    if key in FIXED_FIELDS:
        hint = " (use 'timepoint' for the time since dosing)" if key == "time" else ""
        return f"key {key!r} is one of the fixed fields{hint}"
    if not _VALUE_RE.fullmatch(value):
        return f"value {value!r} of {key!r} must be non-empty, without '_', '/' or spaces"
    return None


def _parse_date(text: str) -> dt.date:
    if not re.fullmatch(r"\d{8}", text):
        raise MetadataError(f"date {text!r} is not YYYYMMDD")
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError as err:
        raise MetadataError(f"date {text!r} is not a calendar date ({err})") from err


def _parse_time(text: str) -> dt.time:
    if not re.fullmatch(r"\d{4}(\d{2})?", text):
        raise MetadataError(f"time {text!r} is not HHMM or HHMMSS")
    try:
        return dt.time(int(text[:2]), int(text[2:4]), int(text[4:] or 0))
    except ValueError as err:
        raise MetadataError(f"time {text!r} is not a time of day ({err})") from err


def _parse_pairs(parts: Sequence[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("-")
        if not sep:
            raise MetadataError(f"field {part!r} is not key-value")
        problem = _extra_problem(key, value)
        if problem:
            raise MetadataError(f"field {part!r}: {problem}")
        if key in pairs:
            raise MetadataError(f"key {key!r} appears twice")
        pairs[key] = value
    return pairs


def parse_name(name: str) -> ImageMetadata:
    """Parse a file name (or image_id) that follows the convention.

    Parameters
    ----------
    name : str
        File name with or without an image extension; a directory part is ignored.

    Returns
    -------
    ImageMetadata

    Raises
    ------
    MetadataError
        Saying which field breaks the convention.

    Examples
    --------
    >>> parse_name("20261125_0930_jdoe_df1_S03_conc-1-2mM.tif").extra
    {'conc': '1-2mM'}
    """
    stem = image_id_from_name(Path(name).name)
    parts = stem.split("_")
    if len(parts) < len(FIXED_FIELDS):
        raise MetadataError(f"{stem!r} has {len(parts)} '_'-separated fields, fewer than 5")
    for label, token in zip(FIXED_FIELDS[2:], parts[2:5], strict=True):
        if not re.fullmatch(_TOKEN, token):
            raise MetadataError(f"{label} {token!r} must be letters and digits only")
    return ImageMetadata(
        date=_parse_date(parts[0]),
        time=_parse_time(parts[1]),
        user=parts[2],
        instrument=parts[3],
        sample=parts[4],
        extra=_parse_pairs(parts[5:]),
    )


def format_name(meta: ImageMetadata) -> str:
    """Write ``meta`` as a name stem following the convention; add the extension yourself.

    ``parse_name(format_name(m)) == m`` for every valid ``m``; seconds are written only when
    not zero, so ``093000`` comes back as ``0930``.
    """
    date = f"{meta.date.year:04d}{meta.date.month:02d}{meta.date.day:02d}"
    time = f"{meta.time:%H%M}" + (f"{meta.time:%S}" if meta.time.second else "")
    fixed = [date, time, meta.user, meta.instrument, meta.sample]
    return "_".join(fixed + [f"{key}-{value}" for key, value in meta.extra.items()])


def parse_folder_name(name: str) -> dict[str, str] | None:
    """Fields of a folder named only with ``key-value`` pairs; None for any other name.

    Examples
    --------
    >>> parse_folder_name("drug-rux_formulation-transcutol")
    {'drug': 'rux', 'formulation': 'transcutol'}
    >>> parse_folder_name("raw data") is None
    True
    """
    try:
        return _parse_pairs(name.split("_"))
    except MetadataError:
        return None


def _folder_fields(path: Path, root: Path | None) -> dict[str, str]:
    folders = [path.parent]
    if root is not None:
        folders = [p for p in path.parents if p != root and root in p.parents]
    fields: dict[str, str] = {}
    for folder in reversed(folders):  # outermost first, so inner folders override
        fields.update(parse_folder_name(folder.name) or {})
    return fields


def _sidecar_fields(sidecar: Path) -> tuple[dict[str, str], list[str]]:
    try:
        content = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return {}, [f"{sidecar.name}: sidecar is not readable JSON ({err}); ignored"]
    if not isinstance(content, dict):
        return {}, [f"{sidecar.name}: sidecar must hold a JSON object of fields; ignored"]
    fields, warnings = {}, []
    for key, value in content.items():
        if not _SIDECAR_KEY_RE.fullmatch(key):
            warnings.append(f"{sidecar.name}: key {key!r} is not [a-z][a-z0-9_]*; ignored")
        elif isinstance(value, str):
            fields[key] = value
        elif isinstance(value, bool | int | float):
            fields[key] = json.dumps(value)
        else:
            warnings.append(f"{sidecar.name}: {key!r} is not a string or number; ignored")
    return fields, warnings


def metadata_for(path: Path, *, root: Path | None = None) -> ResolvedMetadata:
    """Collect an image's metadata from its folders, name and sidecars; never raises.

    Parameters
    ----------
    path : Path
        The image file.
    root : Path, optional
        The dataset folder: folders below it (not itself) may carry ``key-value`` names.
        Without it only the image's own folder is looked at.

    Returns
    -------
    ResolvedMetadata
        With one warning (also logged) when the name does not follow the convention, and one
        per sidecar problem.
    """
    warnings: list[str] = []
    fields = _folder_fields(path, root)
    parsed: ImageMetadata | None = None
    try:
        parsed = parse_name(path.name)
        fields.update(parsed.as_flat_dict())
    except MetadataError as err:
        warnings.append(
            f"{path.name}: name does not follow the metadata convention {CONVENTION} ({err}); "
            "no metadata taken from the name"
        )
    image_id = image_id_from_name(path.name)
    for sidecar in (path.with_name(path.name + ".json"), path.with_name(image_id + ".meta.json")):
        if sidecar.is_file():
            sidecar_fields, sidecar_warnings = _sidecar_fields(sidecar)
            fields.update(sidecar_fields)
            warnings.extend(sidecar_warnings)
    for warning in warnings:
        logger.warning(warning, extra={"image_id": image_id})
    return ResolvedMetadata(parsed=parsed, fields=fields, warnings=tuple(warnings))


def numeric_field(
    fields: Mapping[str, str], keys: str | Sequence[str], units: Mapping[str, float]
) -> float | None:
    """Read the first of ``keys`` present in ``fields`` as a number with a unit.

    Parameters
    ----------
    fields : mapping of str to str
        Flat fields, e.g. ``ResolvedMetadata.fields``.
    keys : str or sequence of str
        Field names to try in order, e.g. ``("timepoint", "t")``.
    units : mapping of str to float
        Accepted unit suffixes and their factor to the wanted unit; ``""`` admits bare numbers.

    Returns
    -------
    float or None
        The value in the wanted unit; None when no key is present.

    Raises
    ------
    MetadataError
        When the value is not a number followed by one of ``units``.

    Examples
    --------
    >>> numeric_field({"t": "1.5h"}, ("timepoint", "t"), TIME_UNITS_MIN)
    90.0
    """
    for key in [keys] if isinstance(keys, str) else keys:
        if key in fields:
            value = fields[key]
            match = _NUMBER_RE.fullmatch(value.strip())
            if match is None or match.group(2) not in units:
                accepted = ", ".join(repr(u) for u in units)
                raise MetadataError(
                    f"field {key}={value!r} is not a number with one of the units {accepted}"
                )
            return float(match.group(1)) * units[match.group(2)]
    return None


def timepoint_min(fields: Mapping[str, str]) -> float | None:
    """Time since dosing in minutes from ``timepoint`` or ``t`` (``30min``, ``1.5h``, ``90s``)."""
    return numeric_field(fields, TIMEPOINT_KEYS, TIME_UNITS_MIN)


def depth_um(fields: Mapping[str, str]) -> float | None:
    """Imaging depth in µm from ``depth`` or ``z`` (``20um``, ``20µm``, ``0.02mm``)."""
    return numeric_field(fields, DEPTH_KEYS, DEPTH_UNITS_UM)
