"""One synthetic digital-cytometry field with its ground truth (IMAGING_MODEL.md §1).

:func:`draw_field` draws one field of view from :class:`~overnight.synth.ranges.CytometryRanges`
(cells in channel 0, plasmonic nanoparticles in channel 1, camera noise) together with the
truth: instance labels, the cell table and every particle
(:func:`overnight.synth.cytometry.write_dataset` writes them to disk). Everything is drawn from
one ``numpy.random.Generator``: the same seed gives the same field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from overnight.errors import ConfigError
from overnight.synth import look
from overnight.synth.cells import CellLayout, crop_layout, layout_cells, touching_ids
from overnight.synth.noise import camera_adu
from overnight.synth.particles import (
    cell_particles,
    glass_particles,
    on_cell,
    pnp_table,
    render_spots,
)
from overnight.synth.ranges import CytometryRanges, FieldParams
from overnight.synth.scatter import ScatterLook, render_scatter

logger = logging.getLogger(__name__)

DEFAULT_RANGES = CytometryRanges()
CHANNEL_NAMES = ("cell", "pnp")
CELL_COLUMNS = ("cell_id", "y", "x", "area_px", "cell_type", "pnp_count")


@dataclass(frozen=True)
class SyntheticField:
    """One synthetic field of view and its ground truth.

    Attributes
    ----------
    image : ndarray of shape (Z, 2, Y, X), uint16
        Channel 0 = cells, channel 1 = PNPs (ADU).
    labels : ndarray of shape (Y, X), uint32
        Cell instance labels, 0 = background, ids as ``cells.cell_id``.
    cells : pandas.DataFrame
        ``cell_id, y, x, area_px, cell_type, pnp_count`` (centroid in px), then ``focus_z``
        (slice), ``touching`` (shares a boundary with another cell) and ``on_border`` (cut
        by the field's edge; its particles outside the field are not counted).
    pnps : pandas.DataFrame
        ``z, y, x, cell_id, intensity``: sub-pixel centre (slice, px, px), owning cell
        (0 = on glass) and peak amplitude above background (ADU).
    params : FieldParams
        The values drawn for this field.
    """

    image: np.ndarray
    labels: np.ndarray
    cells: pd.DataFrame
    pnps: pd.DataFrame
    params: FieldParams


def _type_names(ranges: CytometryRanges, cell_types: tuple[str, ...] | None) -> tuple[str, ...]:
    """Return the names asked for, or every type of ``ranges``."""
    return tuple(s.name for s in ranges.cell_types) if cell_types is None else tuple(cell_types)


def draw_params(
    rng: np.random.Generator,
    size: int | tuple[int, int] = 512,
    ranges: CytometryRanges = DEFAULT_RANGES,
    cell_types: tuple[str, ...] | None = None,
) -> FieldParams:
    """Draw the per-field values of one field of ``size`` px (side, or ``(height, width)``)."""
    height, width = (size, size) if isinstance(size, int) else size
    if min(height, width) < ranges.min_size_px:
        raise ConfigError(
            f"field size {height}x{width} px is below the smallest supported side "
            f"{ranges.min_size_px} px"
        )
    cell_types = _type_names(ranges, cell_types)
    if not cell_types:
        raise ConfigError("cell_types: name at least one cell type to draw")
    for name in cell_types:
        try:
            ranges.cell_type(name)
        except KeyError as err:
            raise ConfigError(str(err.args[0])) from err
    area_scale = height * width / 512**2
    n_z = int(rng.integers(ranges.n_z[0], ranges.n_z[1] + 1))
    focus_z = (n_z - 1) / 2 + rng.uniform(-0.5, 0.5)
    read_noise = rng.uniform(*ranges.read_noise_adu)
    snr = rng.uniform(*ranges.snr)
    scalars = dict(
        height_px=height,
        width_px=width,
        n_z=n_z,
        pixel_size_um=ranges.pixel_size_um,
        z_step_um=ranges.z_step_um,
        cell_types=tuple(cell_types),
        n_cells_drawn=max(
            1, round(rng.integers(*ranges.cells_per_512, endpoint=True) * area_scale)
        ),
        touching_fraction=rng.uniform(*ranges.touching_fraction),
        border_cell_fraction=rng.uniform(*ranges.border_cell_fraction),
        focus_z=focus_z,
        glass_z=max(0.3, focus_z - rng.uniform(1.0, 3.0)),
        cell_signal_adu=float(np.exp(rng.uniform(*np.log(ranges.cell_signal_adu)))),
        rim_contrast=rng.uniform(*ranges.rim_contrast),
        rim_width_px=rng.uniform(*ranges.rim_width_px),
        texture_strength=rng.uniform(*ranges.texture_strength),
        texture_scale_px=rng.uniform(*ranges.texture_scale_px),
        focus_blur_px=rng.uniform(*ranges.focus_blur_px),
        defocus_blur_px_per_slice=rng.uniform(*ranges.defocus_blur_px_per_slice),
        sigma_xy_px=rng.uniform(*ranges.sigma_xy_px),
        sigma_z_slices=rng.uniform(*ranges.sigma_z_slices),
        amplitude_adu=snr * read_noise,
        autoscatter_fraction=rng.uniform(*ranges.autoscatter_fraction),
        n_glass_pnps=max(
            1, round(rng.integers(*ranges.glass_pnps_per_512, endpoint=True) * area_scale)
        ),
        offset_adu=rng.uniform(*ranges.offset_adu),
        gain=rng.uniform(*ranges.gain),
        read_noise_adu=read_noise,
        snr=snr,
    )
    return FieldParams(
        **scalars,
        look_family=ranges.look_family,
        background_adu=rng.uniform(*ranges.background_adu),
        vignetting=rng.uniform(*ranges.vignetting),
        haze_fraction=rng.uniform(*ranges.haze_fraction),
        n_debris=round(rng.integers(*ranges.debris_per_512, endpoint=True) * area_scale),
        psf_anisotropy=rng.uniform(*ranges.psf_anisotropy),
        psf_halo=rng.uniform(*ranges.psf_halo),
    )


def draw_field(
    rng: np.random.Generator,
    size: int | tuple[int, int] = 512,
    ranges: CytometryRanges = DEFAULT_RANGES,
    cell_types: tuple[str, ...] | None = None,
) -> SyntheticField:
    """Draw one synthetic digital-cytometry field and its ground truth.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness.
    size : int or tuple of int
        Field side (px), or ``(height, width)``; 256–2048 in the imaging model.
    ranges : CytometryRanges
        Parameter ranges (defaults = IMAGING_MODEL.md §1).
    cell_types : tuple of str
        Names of the types in ``ranges.cell_types`` to draw; None draws them all.

    Returns
    -------
    SyntheticField
        ``ZCYX`` uint16 image, ``YX`` uint32 labels, cell and particle tables, drawn values.

    Raises
    ------
    ConfigError
        For a field smaller than ``ranges.min_size_px`` or an unknown cell type.
    """
    params = draw_params(rng, size, ranges, cell_types)
    shape_yx = (params.height_px, params.width_px)
    specs = [ranges.cell_type(name) for name in params.cell_types]
    canvas = layout_cells(
        rng,
        shape_yx,
        params.n_cells_drawn,
        specs,
        params.touching_fraction,
        ranges.cell_gap_px,
        params.border_cell_fraction,
    )
    n_placed = len(canvas.outlines)
    focus_z = np.clip(
        params.focus_z + rng.normal(0.0, ranges.focus_spread_slices, n_placed),
        1.0,
        params.n_z - 2.0,
    )
    brightness = params.cell_signal_adu * np.exp(
        rng.normal(0.0, ranges.cell_brightness_log_sigma, n_placed)
    )
    signal = np.empty((params.n_z, 2, *shape_yx), np.float32)  # ZCYX, ADU above the offset
    signal[:, 0] = _cell_channel(rng, canvas, brightness, focus_z, params, ranges)
    layout, kept = crop_layout(canvas)
    points, owners = _draw_particles(rng, canvas, layout, kept, focus_z, params, ranges)
    amplitudes = params.amplitude_adu * np.exp(
        rng.normal(0.0, ranges.amplitude_log_sigma, len(points))
    )
    signal[:, 1] = render_spots(
        (params.n_z, *shape_yx),
        points,
        amplitudes,
        params.sigma_xy_px,
        params.sigma_z_slices,
        params.psf_anisotropy,
        params.psf_halo,
        params.look_family,
    )
    autoscatter_scale = params.autoscatter_fraction * params.amplitude_adu
    signal[:, 1] += signal[:, 0] * np.float32(
        autoscatter_scale / max(float(signal[:, 0].max()), 1e-6)
    )
    _add_look(rng, signal, params)
    image = camera_adu(rng, signal, params.offset_adu, params.gain, params.read_noise_adu)
    del signal
    pnps = pnp_table(points, owners, amplitudes)
    cells = _cell_table(layout, focus_z[kept - 1], pnps)
    return SyntheticField(image=image, labels=layout.labels, cells=cells, pnps=pnps, params=params)


def _add_look(rng: np.random.Generator, signal: np.ndarray, params: FieldParams) -> None:
    """Add haze, debris and background to channel 0 and dim both channels by the illumination.

    ``signal`` is ``ZCYX`` float32 (ADU above the offset), changed in place.
    """
    shape_yx = signal.shape[-2:]
    family = params.look_family
    cells = signal[:, 0]
    extra = look.haze(cells, params.haze_fraction, rng.uniform(12.0, 40.0))
    extra += look.debris(rng, shape_yx, params.n_debris, params.cell_signal_adu)
    cells += extra[None]
    light = look.illumination(rng, shape_yx, params.vignetting, family)
    signal *= light[None, None]
    cells += look.background(rng, shape_yx, params.background_adu, family)[None]


def _cell_channel(
    rng: np.random.Generator,
    canvas: CellLayout,
    brightness: np.ndarray,
    focus_z: np.ndarray,
    params: FieldParams,
    ranges: CytometryRanges,
) -> np.ndarray:
    """Render channel 0 on the padded canvas and cut out the field: ``ZYX`` float32 (ADU)."""
    look = ScatterLook(
        rim_contrast=params.rim_contrast,
        rim_width_px=params.rim_width_px,
        rim_inset_px=ranges.rim_inset_px,
        texture_strength=params.texture_strength,
        texture_scale_px=params.texture_scale_px,
        focus_blur_px=params.focus_blur_px,
        defocus_blur_px_per_slice=params.defocus_blur_px_per_slice,
        family=params.look_family,
    )
    scatter = render_scatter(
        rng,
        canvas.labels,
        np.concatenate([[0.0], brightness]),
        np.concatenate([[params.focus_z], focus_z]),
        params.n_z,
        look,
    )
    pad = canvas.pad_px
    return scatter[:, pad : pad + params.height_px, pad : pad + params.width_px]


def _draw_particles(
    rng: np.random.Generator,
    canvas: CellLayout,
    layout: CellLayout,
    kept: np.ndarray,
    focus_z: np.ndarray,
    params: FieldParams,
    ranges: CytometryRanges,
) -> tuple[np.ndarray, np.ndarray]:
    """Particle centres in the field (``(N, 3)``: z, y, x) and their cell ids (0 = glass).

    Particles are placed on each visible cell's whole surface (``canvas``, padded); those
    outside the field are left out. ``kept[i]`` is the canvas id of field cell ``i + 1``.
    """
    scale_z = ranges.pixel_size_um / ranges.z_step_um  # slices per px
    n_cells = len(kept)
    near_zero = rng.random(n_cells) < ranges.near_zero_fraction
    typical = ranges.pnp_lambda_median * np.exp(
        rng.normal(0.0, ranges.pnp_lambda_log_sigma, n_cells)
    )
    lambdas = np.where(near_zero, rng.uniform(0.0, 1.0, n_cells), typical)
    counts = rng.poisson(np.clip(lambdas, 0.0, ranges.pnp_lambda_max))
    shift = np.array([0.0, canvas.pad_px, canvas.pad_px])
    parts, owners = [], []
    for index, old_id in enumerate(kept.tolist()):
        outline = canvas.outlines[old_id - 1]
        z_cell = float(focus_z[old_id - 1])
        fits = min(z_cell, params.n_z - 1 - z_cell)
        ratio = rng.uniform(*ranges.cell_height_ratio)
        half_height = max(min(outline.radius_px * scale_z * ratio, fits), 0.5)
        points = cell_particles(
            rng,
            canvas.labels,
            outline,
            old_id,
            int(counts[index]),
            z_cell,
            half_height,
            ranges.rim_inset_px,
            ranges.close_pair_fraction,
            params.sigma_xy_px,
        )
        points = points - shift
        points = points[on_cell(points, layout.labels, index + 1)]
        parts.append(points)
        owners.append(np.full(len(points), index + 1))
    glass = glass_particles(
        rng, layout.labels, params.n_glass_pnps, params.glass_z, ranges.glass_min_distance_px
    )
    parts.append(glass)
    owners.append(np.zeros(len(glass), int))
    points = np.vstack(parts)
    points[:, 0] = np.clip(points[:, 0], 0.0, params.n_z - 1)
    return points, np.concatenate(owners).astype(np.int64)


def _cell_table(layout: CellLayout, focus_z: np.ndarray, pnps: pd.DataFrame) -> pd.DataFrame:
    """Build the ``cells.csv`` table of a layout (centroids and areas from the labels)."""
    n_cells = len(layout.outlines)
    flat = layout.labels.ravel().astype(np.int64)
    area = np.bincount(flat, minlength=n_cells + 1)
    rows, cols = np.indices(layout.labels.shape)
    y = np.bincount(flat, rows.ravel(), minlength=n_cells + 1) / np.maximum(area, 1)
    x = np.bincount(flat, cols.ravel(), minlength=n_cells + 1) / np.maximum(area, 1)
    counts = np.bincount(pnps["cell_id"].to_numpy(), minlength=n_cells + 1)
    ids = np.arange(1, n_cells + 1)
    return pd.DataFrame(
        {
            "cell_id": ids.astype(np.int64),
            "y": y[1:],
            "x": x[1:],
            "area_px": area[1:].astype(np.int64),
            "cell_type": [o.cell_type for o in layout.outlines],
            "pnp_count": counts[1:].astype(np.int64),
            "focus_z": focus_z.astype(float),
            "touching": np.isin(ids, touching_ids(layout.labels)),
            "on_border": np.isin(ids, _border_ids(layout.labels)),
        }
    )


def _border_ids(labels: np.ndarray) -> np.ndarray:
    """Ids of cells cut by the field's edge."""
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return np.unique(edge[edge > 0])
