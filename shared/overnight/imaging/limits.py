"""What the image reader accepts: pixel types and the size budget checked before any read.

tifffile allocates whatever a file's header declares, so a 1 kB file that claims to be
100000 x 100000 pixels would exhaust memory. :func:`check_declared_size` compares the declared
shape with a :class:`ReadLimits` budget first; the reader calls it before touching pixel data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from overnight.errors import InvalidImageError

GIB = 2**30
#: Default working-set budget of one image's analysis (GB = GiB here): fits the chart's 4 GiB
#: worker pod with room for the interpreter, the libraries and the models.
DEFAULT_MAX_WORKING_SET_GB = 3.5
#: Memory the analysis holds besides the image (interpreter, libraries, models), bytes.
#: The coefficients below are fitted to peak RSS of ``overnight run --workers 1`` (learned
#: ``cytometry``, the larger of the two pipelines) on 2048² two-channel uint16 fields: 1.56 GiB
#: with 1 z-slice, 2.59 GiB with 10; and to the issue's 2 x 12288² field, 19.3 GB.
BASE_WORKING_SET_BYTES = int(1.1 * GIB)
#: Bytes the pipeline holds per pixel of the Y x X plane (float32 intermediates of the whole
#: field: normalised channels, network outputs and their tiled accumulators, labels, maps).
WORKING_SET_BYTES_PER_PLANE_PIXEL = 120
#: Bytes the pipeline holds per voxel of the Z x Y x X stack (float copies for spot finding).
WORKING_SET_BYTES_PER_VOXEL = 28

#: Context (px) read around each block's core when a field is analysed in blocks: more than
#: the largest cell's diameter (monocytes 55-75 px at 0.2 µm) plus the networks' context, so a
#: cell whose centroid lies in the core is seen whole (see :mod:`overnight.pipeline.blocks`).
DEFAULT_BLOCK_HALO_PX = 128
#: Largest block core side (px): bigger blocks save little halo and hold more memory.
DEFAULT_MAX_BLOCK_CORE_PX = 2048
#: Block cores are multiples of this (px), so blocks start on network and TIFF tile grids.
BLOCK_CORE_MULTIPLE_PX = 128

#: Pixel types the pipeline analyses. Detectors give unsigned integers; anything else
#: (float, signed) usually means a processed file, not raw counts.
SUPPORTED_DTYPES: tuple[np.dtype, ...] = (np.dtype("uint8"), np.dtype("uint16"), np.dtype("uint32"))


class ReadLimits(BaseModel):
    """Size budget for one image, checked against the file's header before reading.

    The defaults admit any real field of view (a 2048² x 12 slices x 2 channels uint16 stack
    is 0.2 GB; a 2 GiB stack reads) and refuse headers that declare absurd sizes.

    Attributes
    ----------
    max_pixels : int
        Most elements (Z*C*Y*X, all timepoints) an image may declare. Default 2**34 (~17e9).
    max_bytes : int
        Most bytes of decoded pixel data an image may declare, memory-mapped or not.
        Default 64 GiB: larger than RAM is fine when the file can be memory-mapped.
    max_in_memory_bytes : int
        Most bytes that may be decoded into RAM at once: a whole compressed image read by
        ``read_stack``, or one page or compressed tile/strip read by ``read_tile``.
        Default 8 GiB. Uncompressed contiguous files are memory-mapped and not bound by it.
    max_working_set_bytes : int
        Most memory the analysis of one image may need, estimated from the declared shape
        (:func:`working_set_bytes`) before the pixels are read; the setting
        ``OVERNIGHT_MAX_WORKING_SET_GB``. Default 3.5 GiB, for a 4 GiB worker. A field whose
        whole-image estimate exceeds it is analysed in ``YX`` blocks sized to fit it.
    block_halo_px : int
        Context (px) read around each block's core; default :data:`DEFAULT_BLOCK_HALO_PX`.
    max_block_core_px : int
        Largest block core side (px); default :data:`DEFAULT_MAX_BLOCK_CORE_PX`.
    """

    model_config = ConfigDict(frozen=True)

    max_pixels: int = Field(default=2**34, gt=0)
    max_bytes: int = Field(default=64 * GIB, gt=0)
    max_in_memory_bytes: int = Field(default=8 * GIB, gt=0)
    max_working_set_bytes: int = Field(default=int(DEFAULT_MAX_WORKING_SET_GB * GIB), gt=0)
    block_halo_px: int = Field(default=DEFAULT_BLOCK_HALO_PX, ge=0)
    max_block_core_px: int = Field(default=DEFAULT_MAX_BLOCK_CORE_PX, ge=BLOCK_CORE_MULTIPLE_PX)

    @classmethod
    def with_working_set_gb(cls, max_working_set_gb: float) -> ReadLimits:
        """The default limits with a working-set budget of ``max_working_set_gb`` GiB."""
        return cls(max_working_set_bytes=int(max_working_set_gb * GIB))


#: The limits used when a caller gives none.
DEFAULT_LIMITS = ReadLimits()


def check_pixel_type(source: str, dtype: np.dtype) -> None:
    """Refuse pixel types other than :data:`SUPPORTED_DTYPES`.

    Raises
    ------
    InvalidImageError
        e.g. ``"pixel type float64 is not supported; expected unsigned integers
        (uint8/uint16/uint32)"``.
    """
    if np.dtype(dtype).newbyteorder("=") not in SUPPORTED_DTYPES:
        expected = "/".join(d.name for d in SUPPORTED_DTYPES)
        raise InvalidImageError(
            source,
            f"pixel type {np.dtype(dtype).name} is not supported; "
            f"expected unsigned integers ({expected})",
        )


def _format_bytes(n_bytes: int) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", GIB), ("MiB", 2**20), ("kiB", 2**10)):
        if n_bytes >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{n_bytes} B"


def check_declared_size(
    source: str,
    shape: Sequence[int],
    dtype: np.dtype,
    limits: ReadLimits,
    *,
    in_memory: bool,
    what: str = "image",
) -> None:
    """Refuse a declared ``shape`` x ``dtype`` that exceeds ``limits``, before anything is read.

    Parameters
    ----------
    source : str
        File name for the error message.
    shape : sequence of int
        Declared shape (any axes).
    dtype : numpy.dtype
        Declared pixel type.
    limits : ReadLimits
        The budget.
    in_memory : bool
        True when the data would be decoded into RAM (also checks ``max_in_memory_bytes``).
    what : str
        What the shape describes, for the message ("image", "tile").

    Raises
    ------
    InvalidImageError
        Naming the declared shape, its size and the limit it exceeds.
    """
    n_pixels = math.prod(int(s) for s in shape)
    n_bytes = n_pixels * np.dtype(dtype).itemsize
    declared = f"{what} declares shape {tuple(int(s) for s in shape)} {np.dtype(dtype).name}"
    if n_pixels > limits.max_pixels:
        raise InvalidImageError(
            source,
            f"{declared} = {n_pixels:.3g} pixels, more than the limit of {limits.max_pixels:.3g} "
            "(ReadLimits.max_pixels); the header is corrupt or the file is too large to analyse",
        )
    if n_bytes > limits.max_bytes:
        raise InvalidImageError(
            source,
            f"{declared} = {_format_bytes(n_bytes)}, more than the limit of "
            f"{_format_bytes(limits.max_bytes)} (ReadLimits.max_bytes)",
        )
    if in_memory and n_bytes > limits.max_in_memory_bytes:
        raise InvalidImageError(
            source,
            f"{declared} = {_format_bytes(n_bytes)} to decode in memory, more than the limit of "
            f"{_format_bytes(limits.max_in_memory_bytes)} (ReadLimits.max_in_memory_bytes); "
            "read it in tiles with read_tile, or save it uncompressed so it can be memory-mapped",
        )


def working_set_bytes(shape_zcyx: Sequence[int], dtype: np.dtype) -> int:
    """Estimated peak memory (bytes) of analysing a ``shape_zcyx`` image of ``dtype``.

    The decoded stack, plus per-plane and per-voxel intermediates, plus the fixed base; the
    coefficients are measured peaks of ``overnight run`` (see the constants above).

    >>> round(working_set_bytes((1, 2, 2048, 2048), np.dtype("uint16")) / GIB, 2)
    1.69
    """
    z, c, y, x = (int(v) for v in shape_zcyx)
    decoded = z * c * y * x * np.dtype(dtype).itemsize
    return (
        BASE_WORKING_SET_BYTES
        + decoded
        + WORKING_SET_BYTES_PER_PLANE_PIXEL * y * x
        + WORKING_SET_BYTES_PER_VOXEL * z * y * x
    )


def check_working_set(
    source: str, shape_zcyx: Sequence[int], dtype: np.dtype, limits: ReadLimits
) -> None:
    """Refuse an image whose analysis would need more than ``limits.max_working_set_bytes``.

    Raises
    ------
    InvalidImageError
        Naming the file, its shape, the estimate and the setting to raise.
    """
    need = working_set_bytes(shape_zcyx, dtype)
    if need <= limits.max_working_set_bytes:
        return
    z, c, y, x = (int(v) for v in shape_zcyx)
    decoded = z * c * y * x * np.dtype(dtype).itemsize
    raise InvalidImageError(
        source,
        f"a {x}x{y} field with {z} z-slice(s) and {c} channel(s) of {np.dtype(dtype).name} "
        f"({_format_bytes(decoded)} decoded) needs about {_format_bytes(need)} to analyse, more "
        f"than the working-set budget of {_format_bytes(limits.max_working_set_bytes)} "
        "(OVERNIGHT_MAX_WORKING_SET_GB); raise the setting together with the worker's memory "
        "limit, or split the image into smaller fields",
    )


def needs_blocks(shape_zcyx: Sequence[int], dtype: np.dtype, limits: ReadLimits) -> bool:
    """Whether the whole-field estimate of ``shape_zcyx`` exceeds the working-set budget."""
    return working_set_bytes(shape_zcyx, dtype) > limits.max_working_set_bytes


def block_working_set_bytes(
    shape_zcyx: Sequence[int], dtype: np.dtype, core_px: int, halo_px: int
) -> int:
    """Estimated peak memory (bytes) of analysing ``shape_zcyx`` in blocks.

    One block (``core_px`` + 2 ``halo_px`` per ``YX`` side, all of Z and C) analysed as a
    field (:func:`working_set_bytes`), plus the band of finished uint32 label rows that spans
    the field's width while blocks are stitched (:mod:`overnight.pipeline.blocks`).

    >>> shape = (1, 2, 12288, 12288)
    >>> round(block_working_set_bytes(shape, np.dtype("uint16"), 2048, 128) / GIB, 2)
    1.96
    """
    z, c, y, x = (int(v) for v in shape_zcyx)
    side = core_px + 2 * halo_px
    block = working_set_bytes((z, c, min(y, side), min(x, side)), dtype)
    band_rows = min(y, side + BLOCK_CORE_MULTIPLE_PX)
    return block + band_rows * x * np.dtype(np.uint32).itemsize


def block_core_px(shape_zcyx: Sequence[int], dtype: np.dtype, limits: ReadLimits) -> int | None:
    """The largest block core side (px) whose blocks fit the budget; None if none does.

    Cores are multiples of :data:`BLOCK_CORE_MULTIPLE_PX`, at most ``limits.max_block_core_px``.

    >>> block_core_px((24, 2, 4096, 4096), np.dtype("uint16"), ReadLimits())
    1408
    >>> block_core_px((24, 2, 4096, 4096), np.dtype("uint16"), ReadLimits.with_working_set_gb(1))
    """
    step = BLOCK_CORE_MULTIPLE_PX
    for core_px in range(limits.max_block_core_px // step * step, step - 1, -step):
        need = block_working_set_bytes(shape_zcyx, dtype, core_px, limits.block_halo_px)
        if need <= limits.max_working_set_bytes:
            return core_px
    return None


def check_streamable(
    source: str, shape_zcyx: Sequence[int], dtype: np.dtype, limits: ReadLimits
) -> int:
    """The block core side (px) for a field too large to analyse whole; refuse if none fits.

    A block holds every z-slice and channel of its ``YX`` window (the steps need whole
    stacks), so a stack whose smallest block alone exceeds the budget cannot be streamed.

    Raises
    ------
    InvalidImageError
        Naming the file, its shape, the smallest block's estimate and the setting to raise.
    """
    core_px = block_core_px(shape_zcyx, dtype, limits)
    if core_px is not None:
        return core_px
    z, c, y, x = (int(v) for v in shape_zcyx)
    decoded = z * c * y * x * np.dtype(dtype).itemsize
    smallest = block_working_set_bytes(
        shape_zcyx, dtype, BLOCK_CORE_MULTIPLE_PX, limits.block_halo_px
    )
    raise InvalidImageError(
        source,
        f"a {x}x{y} field with {z} z-slice(s) and {c} channel(s) of {np.dtype(dtype).name} "
        f"({_format_bytes(decoded)} decoded) is analysed in blocks of all its z-slices, and even "
        f"the smallest block ({BLOCK_CORE_MULTIPLE_PX} px + {limits.block_halo_px} px context "
        f"per side) needs about {_format_bytes(smallest)}, more than the working-set budget of "
        f"{_format_bytes(limits.max_working_set_bytes)} (OVERNIGHT_MAX_WORKING_SET_GB); raise "
        "the setting together with the worker's memory limit, or split the stack in z",
    )
