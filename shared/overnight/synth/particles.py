"""Plasmonic nanoparticles (PNPs) of a synthetic field: where they are and how they look.

Particles bound to a cell lie on the surface of a flattened spheroid over the cell's outline:
a uniform direction on the unit sphere gives the lateral position (a fraction ``sqrt(1 - u²)``
of the way from the centre to the membrane, which lies ``rim_inset_px`` inside the mask edge)
and the height ``z_cell + u · half_height``. Seen from above they therefore crowd towards the
rim. A particle whose rounded pixel falls outside its cell's mask (where a neighbour took over
the overlap) is drawn again. Particles on glass lie at least ``min_distance_px`` from every cell.
Each particle is a 3D Gaussian spot whose peak is its amplitude.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from overnight.synth.cells import CellOutline
from overnight.synth.look import LookFamily, spot_profile_xy

PNP_COLUMNS = ("z", "y", "x", "cell_id", "intensity")
#: Redraws of particles that fell outside their cell before they are left out.
_REDRAWS = 8
#: Spots are rendered out to this many σ.
_SPOT_REACH_SIGMA = 4.0
#: Particles rendered per vectorised batch (bounds memory on large fields).
_BATCH = 4096


def surface_points(
    rng: np.random.Generator,
    outline: CellOutline,
    n: int,
    focus_z: float,
    half_height_slices: float,
    rim_inset_px: float,
) -> np.ndarray:
    """``n`` points (``z, y, x``; slices, px) on the spheroid over ``outline``: ``(n, 3)``."""
    u = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    reach = np.sqrt(1.0 - u**2) * np.clip(outline.radius_at(phi) - rim_inset_px, 0.0, None)
    y = outline.center_yx[0] + reach * np.sin(phi)
    x = outline.center_yx[1] + reach * np.cos(phi)
    return np.column_stack([focus_z + u * half_height_slices, y, x])


def on_cell(points: np.ndarray, labels: np.ndarray, cell_id: int) -> np.ndarray:
    """Whether each point's rounded pixel lies in ``labels`` and belongs to ``cell_id``."""
    iy = np.rint(points[:, 1]).astype(int)
    ix = np.rint(points[:, 2]).astype(int)
    inside = (iy >= 0) & (iy < labels.shape[0]) & (ix >= 0) & (ix < labels.shape[1])
    on_cell = np.zeros(len(points), bool)
    on_cell[inside] = labels[iy[inside], ix[inside]] == cell_id
    return on_cell


def cell_particles(
    rng: np.random.Generator,
    labels: np.ndarray,
    outline: CellOutline,
    cell_id: int,
    n: int,
    focus_z: float,
    half_height_slices: float,
    rim_inset_px: float,
    close_pair_fraction: float,
    sigma_xy_px: float,
) -> np.ndarray:
    """Up to ``n`` particle positions (``z, y, x``) on cell ``cell_id``: ``(m, 3)``, m ≤ n.

    About ``close_pair_fraction`` of them sit 0.3–1 σ laterally from another particle.
    """
    n_close = min(int(rng.binomial(n, close_pair_fraction)), n // 2)
    points = surface_points(rng, outline, n - n_close, focus_z, half_height_slices, rim_inset_px)
    for _ in range(_REDRAWS):
        missed = ~on_cell(points, labels, cell_id)
        if not missed.any():
            break
        points[missed] = surface_points(
            rng, outline, int(missed.sum()), focus_z, half_height_slices, rim_inset_px
        )
    points = points[on_cell(points, labels, cell_id)]
    if n_close and len(points):
        anchors = points[rng.integers(0, len(points), n_close)]
        angle = rng.uniform(-np.pi, np.pi, n_close)
        step = rng.uniform(0.3, 1.0, n_close) * sigma_xy_px
        partners = anchors + np.column_stack(
            [rng.normal(0.0, 0.2, n_close), step * np.sin(angle), step * np.cos(angle)]
        )
        points = np.vstack([points, partners[on_cell(partners, labels, cell_id)]])
    return points


def glass_particles(
    rng: np.random.Generator,
    labels: np.ndarray,
    n: int,
    glass_z: float,
    min_distance_px: float,
) -> np.ndarray:
    """Up to ``n`` positions (``z, y, x``) on glass, ≥ ``min_distance_px`` from every cell.

    Points are drawn on pixels at least ``min_distance_px + 1`` from every cell pixel and
    moved by less than half a pixel, so their rounded pixel keeps that distance.
    """
    if labels.any():
        clearance = ndimage.distance_transform_edt(labels == 0)
    else:
        clearance = np.full(labels.shape, np.inf)
    free = np.flatnonzero(clearance >= min_distance_px + 1)
    if n == 0 or free.size == 0:
        return np.zeros((0, 3))
    picked = rng.choice(free, size=min(n, free.size), replace=False)
    iy, ix = np.unravel_index(picked, labels.shape)
    jitter = rng.uniform(-0.49, 0.49, (picked.size, 2))
    z = glass_z + rng.normal(0.0, 0.25, picked.size)
    return np.column_stack([z, iy + jitter[:, 0], ix + jitter[:, 1]])


def render_spots(
    shape_zyx: tuple[int, int, int],
    points: np.ndarray,
    amplitudes: np.ndarray,
    sigma_xy_px: float,
    sigma_z_slices: float,
    anisotropy: float = 1.0,
    halo: float = 0.0,
    family: LookFamily = "standard",
) -> np.ndarray:
    """Sum of 3D spots, peak ``amplitudes`` at ``points`` (``z, y, x``): ``ZYX`` float32.

    The spot is Gaussian in z; laterally :func:`~overnight.synth.look.spot_profile_xy` with
    σ ``sigma_xy_px · anisotropy`` in y and ``sigma_xy_px / anisotropy`` in x (a plain
    Gaussian for the defaults).

    Parameters
    ----------
    shape_zyx : tuple of int
        Output shape (slices, px, px).
    points : ndarray of shape (N, 3)
        Sub-pixel spot centres (slice, px, px).
    amplitudes : ndarray of shape (N,)
        Peak of each spot.
    sigma_xy_px, sigma_z_slices : float
        Spot σ laterally (px) and axially (slices).
    anisotropy, halo, family
        Spot ellipticity, share of the wide halo and profile family.
    """
    n_z, height, width = shape_zyx
    gaussian = family == "standard" and halo == 0.0 and anisotropy == 1.0
    widest = sigma_xy_px * anisotropy * (1.0 if gaussian else 1.6)
    reach = int(np.ceil(_SPOT_REACH_SIGMA * widest))
    side = 2 * reach + 1
    canvas = np.zeros((n_z, height + 2 * reach, width + 2 * reach), np.float32)
    flat = canvas.reshape(-1)
    offsets = np.arange(side)
    slices = np.arange(n_z)
    for start in range(0, len(points), _BATCH):
        z, y, x = points[start : start + _BATCH].T
        amp = amplitudes[start : start + _BATCH]
        y0 = np.floor(y).astype(int) - reach  # first row of each window, field coordinates
        x0 = np.floor(x).astype(int) - reach
        rows = y0[:, None] + offsets
        cols = x0[:, None] + offsets
        gz = np.exp(-((slices - z[:, None]) ** 2) / (2 * sigma_z_slices**2))
        if gaussian:
            gy = np.exp(-((rows - y[:, None]) ** 2) / (2 * sigma_xy_px**2))
            gx = np.exp(-((cols - x[:, None]) ** 2) / (2 * sigma_xy_px**2))
            lateral = gy[:, :, None] * gx[:, None, :]
        else:
            dy = (rows - y[:, None]) / anisotropy
            dx = (cols - x[:, None]) * anisotropy
            distance_sq = dy[:, :, None] ** 2 + dx[:, None, :] ** 2
            lateral = spot_profile_xy(distance_sq, sigma_xy_px, halo, family)
        values = (amp[:, None, None, None] * gz[:, :, None, None]) * lateral[:, None, :, :]
        inside = (
            (rows[:, None, :, None] >= -reach)
            & (rows[:, None, :, None] < height + reach)
            & (cols[:, None, None, :] >= -reach)
            & (cols[:, None, None, :] < width + reach)
        )
        index = (
            slices[None, :, None, None] * canvas.shape[1] * canvas.shape[2]
            + (rows[:, None, :, None] + reach) * canvas.shape[2]
            + (cols[:, None, None, :] + reach)
        )
        index, inside = np.broadcast_arrays(index, inside)
        np.add.at(flat, index[inside], values[inside].astype(np.float32))
    return canvas[:, reach : reach + height, reach : reach + width].copy()


def pnp_table(points: np.ndarray, cell_ids: np.ndarray, amplitudes: np.ndarray) -> pd.DataFrame:
    """Build the ``pnps.csv`` table: ``z, y, x, cell_id, intensity`` (slices, px, px, id, ADU)."""
    return pd.DataFrame(
        {
            "z": points[:, 0].astype(float),
            "y": points[:, 1].astype(float),
            "x": points[:, 2].astype(float),
            "cell_id": cell_ids.astype(np.int64),
            "intensity": amplitudes.astype(float),
        },
        columns=list(PNP_COLUMNS),
    )
