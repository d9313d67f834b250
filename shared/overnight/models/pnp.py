"""The learned particle model: 3D U-Net density → spots with sub-pixel positions and multiplicity.

Input: the PNP channel minus its background, divided by the field's typical spot brightness
(the median peak of the clearly visible spots), so one particle looks the same at every SNR and
a pair looks twice as bright. Output: a density made of one Gaussian blob per particle, each
integrating to ``density_scale``. Spots are the local maxima of the density; each takes the
voxels of its watershed basin. How many particles a basin holds is the expectation of a
classifier on basin features (:mod:`overnight.models.multiplicity`; models without one use the
basin's integral / ``density_scale``). A basin holding ``m`` particles is split into ``m``
spots by density-weighted k-means, so that particles closer than the PSF are counted and
located one by one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from overnight.models.config import PnpModelConfig
from overnight.models.multiplicity import MultiplicityModel, basin_features
from overnight.models.pnp_basins import basin_voxels
from overnight.steps.pnp import Spots, estimate_background
from overnight.steps.smoothing import gaussian_filter

logger = logging.getLogger(__name__)

#: Smoothing (slices, px, px) before finding the spots that set the brightness scale.
_SCALE_SMOOTH = (1.0, 1.0, 1.0)
#: The box (slices, px, px) a clear spot is the maximum of.
_SCALE_FOOTPRINT = (3, 5, 5)
#: How far (px, ``YX``) the scale's smoothing and maxima read around a voxel: 4 σ + the box.
SCALE_CONTEXT_PX = 4 * int(_SCALE_SMOOTH[1]) + _SCALE_FOOTPRINT[1] // 2
#: A spot is clear enough to set the scale when its smoothed peak passes this many SDs.
_SCALE_MIN_SD = 6.0
#: Half the 99th-percentile peak this many times the median means a separate bright population.
_BRIGHT_POPULATION = 2.0
#: Bright and faint maxima this many times apart are particles and texture, not pairs and singles.
_SEPARATE_POPULATIONS = 3.5


@dataclass(frozen=True)
class PnpScale:
    """Background (ADU) and one particle's smoothed peak (ADU) of a field: the input's units."""

    background_adu: float
    spot_peak_adu: float


def pnp_scale(volume: np.ndarray) -> PnpScale:
    """Background and typical single-spot brightness of a whole field's ``ZYX`` PNP channel.

    Falls back to ``_SCALE_MIN_SD`` noise SDs when fewer than three clear spots exist. The
    same numbers as a field analysed in blocks measures in three passes
    (:func:`scale_smoothed`, :func:`clear_peaks`, :func:`scale_from_peaks`).
    """
    volume = np.asarray(volume, np.float32)
    background, _ = estimate_background(volume)
    smoothed = scale_smoothed(volume, background)
    _, noise = estimate_background(smoothed)
    return scale_from_peaks(background, clear_peaks(smoothed, noise), noise)


def scale_smoothed(volume: np.ndarray, background_adu: float) -> np.ndarray:
    """The ``ZYX`` volume minus its background, smoothed to find clear spots (float32).

    Reads :data:`SCALE_CONTEXT_PX` around each voxel in ``YX``.
    """
    volume = np.asarray(volume, np.float32)
    sigma = _SCALE_SMOOTH if volume.shape[0] > 1 else (0.0, *_SCALE_SMOOTH[1:])
    return gaussian_filter(volume - background_adu, sigma)


def clear_peaks(
    smoothed: np.ndarray, noise_sd: float, region: tuple[slice, slice] | None = None
) -> np.ndarray:
    """Values of the smoothed volume's maxima above ``_SCALE_MIN_SD`` × ``noise_sd`` (1D).

    ``region``: only the maxima in this ``YX`` part of the window (a block's core).
    """
    candidates = smoothed > _SCALE_MIN_SD * noise_sd
    if region is not None:
        inside = np.zeros(candidates.shape[-2:], bool)
        inside[region] = True
        candidates &= inside
    peaks = local_maxima(smoothed, candidates, _SCALE_FOOTPRINT)
    return smoothed[tuple(peaks.T)]


def scale_from_peaks(background_adu: float, peak_values: np.ndarray, noise_sd: float) -> PnpScale:
    """The field's :class:`PnpScale` from all its :func:`clear_peaks` and its smoothed noise."""
    peak = typical_spot_peak(peak_values) if peak_values.size >= 3 else _SCALE_MIN_SD * noise_sd
    return PnpScale(background_adu, max(peak, 1e-3))


def local_maxima(
    volume: np.ndarray, candidates: np.ndarray, footprint: tuple[int, int, int]
) -> np.ndarray:
    """Positions ``(N, 3)`` of the ``candidates`` that are maxima of ``volume`` in a box.

    The same voxels as ``(volume == ndi.maximum_filter(volume, size=footprint)) & candidates``
    (plateaus included; the box is cut at the edges), but only the candidates' neighbours are
    read: particles are sparse, so this costs a few percent of filtering the whole volume.
    Away from the edges each neighbour is one flat offset, and a candidate is dropped at the
    first neighbour above it (most are, within a few), so few comparisons remain.

    Examples
    --------
    >>> volume = np.zeros((1, 5, 5)); volume[0, 1, 1] = 2; volume[0, 2, 2] = 1
    >>> local_maxima(volume, volume > 0, (3, 3, 3)).tolist()
    [[0, 1, 1]]
    """
    coords = np.argwhere(candidates)
    if not len(coords):
        return coords.reshape(0, 3)
    radii = np.array([size // 2 for size in footprint])
    inner = np.all((coords >= radii) & (coords < np.array(volume.shape) - radii), axis=1)
    keep = np.zeros(len(coords), bool)
    keep[inner] = _maxima_inside(np.ascontiguousarray(volume), coords[inner], footprint)
    keep[~inner] = _maxima_at_edges(volume, coords[~inner], footprint)
    return coords[keep]


def _box_shifts(footprint: tuple[int, int, int]) -> list[np.ndarray]:
    """The offsets of a box's voxels from its centre, the centre left out."""
    radii = np.array([size // 2 for size in footprint])
    shifts = [np.subtract(offset, radii) for offset in np.ndindex(*footprint)]
    return [shift for shift in shifts if shift.any()]


def _maxima_inside(
    volume: np.ndarray, coords: np.ndarray, footprint: tuple[int, int, int]
) -> np.ndarray:
    """Which of ``coords`` (whole box inside ``volume``) are maxima of their box (bool)."""
    flat = volume.ravel()
    index = np.ravel_multi_index(tuple(coords.T), volume.shape)
    values = flat[index]
    alive = np.arange(len(index))
    strides = np.array([int(np.prod(volume.shape[axis + 1 :])) for axis in range(volume.ndim)])
    for shift in _box_shifts(footprint):
        alive = alive[values[alive] >= flat[index[alive] + int(shift @ strides)]]
    keep = np.zeros(len(coords), bool)
    keep[alive] = True
    return keep


def _maxima_at_edges(
    volume: np.ndarray, coords: np.ndarray, footprint: tuple[int, int, int]
) -> np.ndarray:
    """Which of ``coords`` are maxima of their box cut at the edges of ``volume`` (bool)."""
    values = volume[tuple(coords.T)]
    keep = np.ones(len(coords), bool)
    for shift in _box_shifts(footprint):
        neighbour = tuple(
            np.clip(coords[:, axis] + shift[axis], 0, volume.shape[axis] - 1) for axis in range(3)
        )
        keep &= values >= volume[neighbour]
    return keep


def typical_spot_peak(values: np.ndarray) -> float:
    """One particle's smoothed peak (ADU) from the peak values of a field's clear maxima.

    Usually the median. When a few particles sit among many fainter maxima (cell autoscatter
    texture in a sparse field), the median is a texture peak; then a bright population stands
    far above it, and the estimate is the median of the maxima above the split between the two.
    """
    median = float(np.median(values))
    bright = 0.5 * float(np.percentile(values, 99))
    if bright <= _BRIGHT_POPULATION * median:
        return median
    faint, peak = median, bright
    for _ in range(5):  # split the two populations at the geometric mean of their medians
        threshold = float(np.sqrt(faint * peak))
        if np.count_nonzero(values > threshold) < 3:
            break
        peak = float(np.median(values[values > threshold]))
        faint = float(np.median(values[values <= threshold]))
    # particles and their close pairs differ ~2×; texture lies far below a particle
    return peak if peak >= _SEPARATE_POPULATIONS * faint else median


def pnp_input(volume: np.ndarray, scale: PnpScale) -> np.ndarray:
    """The network input (``ZYX`` float32) in units of one particle's smoothed peak."""
    return ((np.asarray(volume, np.float32) - scale.background_adu) / scale.spot_peak_adu).astype(
        np.float32
    )


def blob_peak(config: PnpModelConfig) -> float:
    """Peak value of one particle's blob in the density."""
    sxy, sz = config.density_sigma_xy_px, config.density_sigma_z_slices
    return config.density_scale / ((2 * np.pi) ** 1.5 * sxy * sxy * sz)


def density_target(
    shape_zyx: tuple[int, int, int], pnps: pd.DataFrame, config: PnpModelConfig
) -> np.ndarray:
    """The training target: one Gaussian blob per particle of ``pnps`` (``z, y, x``), ``ZYX``."""
    from overnight.synth.particles import render_spots

    points = pnps[["z", "y", "x"]].to_numpy(float).reshape(-1, 3)
    amplitudes = np.full(len(points), blob_peak(config))
    return render_spots(
        shape_zyx, points, amplitudes, config.density_sigma_xy_px, config.density_sigma_z_slices
    )


def _split_basin(
    coords: np.ndarray, weights: np.ndarray, m: int, rng: np.random.Generator
) -> np.ndarray:
    """``m`` density-weighted k-means centres (``(m, 3)``) of one basin's voxels.

    At most 10 rounds; it stops when the assignment repeats (the centres would not move).
    """
    order = np.argsort(-weights)
    centres = coords[order[:m]].astype(float) + rng.normal(0, 0.1, (m, 3))
    previous: np.ndarray | None = None
    for _ in range(10):
        nearest = np.argmin(((coords[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
        if previous is not None and np.array_equal(nearest, previous):
            break  # the centres are those of this assignment already
        previous = nearest
        for k in range(m):
            w = weights[nearest == k]
            if w.sum() > 0:
                centres[k] = (coords[nearest == k] * w[:, None]).sum(axis=0) / w.sum()
    return centres


def density_basins(density: np.ndarray, config: PnpModelConfig) -> np.ndarray:
    """Watershed basins (``ZYX`` labels ``1..N``) of the density's maxima; 0 = no particle.

    The basins of ``skimage.segmentation.watershed(-density, maxima, mask=density > 5 % of a
    particle's peak)``, computed where it matters: a connected part of the mask with one
    maximum is that maximum's basin, one with none is no basin, and only parts holding several
    maxima are flooded, each in its own bounding box (the mask covers ~1 % of a field; see
    :func:`overnight.models.pnp_basins.basin_voxels`).
    """
    flat, labels = _basin_voxels(density, config)
    basins = np.zeros(density.shape, np.int32)
    basins.ravel()[flat] = labels
    return basins


def _basin_voxels(density: np.ndarray, config: PnpModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the mask's voxels and their basins (:func:`density_basins`, sparse)."""
    peak = blob_peak(config)
    footprint = (3, config.peak_footprint_px, config.peak_footprint_px)
    maxima = local_maxima(density, density > config.peak_threshold * peak, footprint)
    return basin_voxels(density, maxima, 0.05 * peak)


def extract_spots(
    density: np.ndarray,
    volume: np.ndarray,
    config: PnpModelConfig,
    multiplicity: MultiplicityModel | None = None,
    normalised: np.ndarray | None = None,
) -> Spots:
    """Spots from a ``ZYX`` density; ``volume`` (background-subtracted, ADU) gives intensities.

    A basin's particle number comes from ``multiplicity`` (given the network input
    ``normalised``) as an expectation, or else from its integral / ``density_scale``. A basin
    holding ``m ≥ 2`` particles gives ``m`` spots of multiplicity 1 at its k-means centres;
    with ``multiplicity``, a doubtful basin (expected < 0.5) stays as a spot of multiplicity 0
    whose expectation still counts in its cell's sum. Positions in slices and px. A crop of
    ``density`` that holds a basin whole gives that basin's spots, shifted by the crop's origin.
    """
    flat, voxel_basin = _basin_voxels(density, config)
    in_basin = voxel_basin > 0
    if not in_basin.any():
        return Spots.empty()
    n = int(voxel_basin.max())
    where = np.unravel_index(flat[in_basin], density.shape)  # raster order, as np.nonzero
    label = voxel_basin[in_basin]
    weight = density[where].astype(np.float64)
    mass = np.bincount(label, weight, n + 1)[1:]
    centres = (
        np.column_stack([np.bincount(label, weight * axis, n + 1)[1:] for axis in where])
        / np.where(mass == 0, 1.0, mass)[:, None]
    )
    if multiplicity is not None:
        if normalised is None:
            raise ValueError("extract_spots needs the network input to use a multiplicity model")
        features = basin_features(
            density, normalised, None, config.density_scale, blob_peak(config), (where, label)
        )
        expected = multiplicity.expected(features)
        kept = np.arange(n)
        particles = np.rint(expected).astype(np.int64)
    else:
        integral = mass / config.density_scale
        kept = np.flatnonzero(integral >= config.min_integral)
        particles = np.maximum(1, np.rint(integral[kept])).astype(np.int64)
        expected = None
    positions, intensities, counts, expectations = [], [], [], []
    # the voxels of basin k + 1, in raster order: by_label[bounds[k] : bounds[k + 1]]
    by_label = np.argsort(label, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(label, minlength=n + 1)[1:])])
    for row, (index, m) in enumerate(zip(kept, particles, strict=True)):
        c = centres[index]
        zi, yi, xi = (
            int(np.clip(np.rint(v), 0, s - 1)) for v, s in zip(c, volume.shape, strict=True)
        )
        spots_here = max(int(m), 1)
        intensities.extend([float(volume[zi, yi, xi]) / spots_here] * spots_here)
        if m <= 1:
            positions.append(c[None])
            counts.append(int(m))
        else:
            voxels = by_label[bounds[index] : bounds[index + 1]]
            coords = np.column_stack([axis[voxels] for axis in where])
            # the same jitter for every basin, so that a basin splits the same wherever it lies
            # and whichever basins come before it (a field analysed whole or in blocks)
            jitter = np.random.default_rng(0)
            positions.append(_split_basin(coords, weight[voxels], int(m), jitter))
            counts.extend([1] * int(m))
        if expected is not None:
            expectations.extend([expected[row] / spots_here] * spots_here)
    zyx = np.concatenate(positions) if positions else np.zeros((0, 3))
    return Spots(
        z=zyx[:, 0],
        y=zyx[:, 1],
        x=zyx[:, 2],
        intensity=np.asarray(intensities, float),
        multiplicity=np.asarray(counts, dtype=np.int64),
        expected=np.asarray(expectations, float) if expected is not None else None,
    )


class PnpModel:
    """A trained particle model: network and spot extraction. Load once, reuse.

    ``int8_model``: the int8 ONNX network of the same weights, run where ONNX Runtime runs
    (:mod:`overnight.models.quantize`); None runs the float32 network.
    """

    def __init__(
        self,
        config: PnpModelConfig,
        network: object,
        multiplicity: MultiplicityModel | None = None,
        int8_model: bytes | None = None,
    ) -> None:
        from overnight.models.runtime import network_predictor

        self.config = config
        self.network = network
        self.multiplicity = multiplicity
        self.int8 = int8_model is not None
        self._predict = network_predictor(network, config.unet, int8_model=int8_model)

    @classmethod
    def load(cls, model_dir: Path) -> PnpModel:
        """The particle model in ``model_dir``; its int8 network where enabled and current."""
        from overnight.models.loading import load_network
        from overnight.models.quantize import int8_model
        from overnight.models.runtime import int8_enabled

        config, network = load_network(model_dir, PnpModelConfig)
        int8 = int8_model(model_dir) if int8_enabled() else None
        return cls(config, network, MultiplicityModel.load(model_dir), int8)

    def density(self, normalised: np.ndarray) -> np.ndarray:
        """Density (``ZYX``) of a normalised ``ZYX`` PNP channel, tiled in ``YX``.

        A 3D network pads stacks thinner than ``min_z_slices`` in z (as in training) and crops
        back; a 2.5-D one runs on windows of its ``z_window_slices`` (padded or overlapping).
        """
        from overnight.models.tiling import predict_tiled, predict_z_windows

        def tiled(volume: np.ndarray) -> np.ndarray:
            (density,) = predict_tiled(
                self._predict,
                volume[..., None],
                self.config.tile_px,
                self.config.tile_overlap_px,
                self.config.unet.size_multiple_px,
            )
            return density[..., 0]

        window = self.config.unet.z_window_slices
        if window:
            return predict_z_windows(tiled, np.asarray(normalised, np.float32), window)
        n_z = normalised.shape[0]
        missing = max(0, self.config.min_z_slices - n_z)
        padded = np.pad(normalised, ((missing // 2, missing - missing // 2), (0, 0), (0, 0)))
        return tiled(padded)[missing // 2 : missing // 2 + n_z]

    def detect(self, volume: np.ndarray, scale: PnpScale | None = None) -> Spots:
        """Particles of a ``ZYX`` PNP channel (ADU).

        ``scale``: the field's (measured on the whole field when ``volume`` is one block of
        it); None: that of ``volume`` (:func:`pnp_scale`).
        """
        scale = scale if scale is not None else pnp_scale(volume)
        normalised = pnp_input(volume, scale)
        density = self.density(normalised) * np.float32(self.config.density_gain)
        return extract_spots(
            density,
            np.asarray(volume, np.float32) - scale.background_adu,
            self.config,
            self.multiplicity,
            normalised,
        )
