"""The learned particle model: 3D U-Net density → spots with sub-pixel positions and multiplicity.

Input: the PNP channel minus its background, divided by the field's typical spot brightness
(the median peak of the clearly visible spots), so one particle looks the same at every SNR and
a pair looks twice as bright. Output: a density made of one Gaussian blob per particle, each
integrating to ``density_scale``. Spots are the local maxima of the density; each takes the
voxels of its watershed basin, and the basin's integral / ``density_scale`` is how many
particles it holds. A basin holding ``m`` particles is split into ``m`` spots by density-
weighted k-means, so that particles closer than the PSF are counted and located one by one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage import segmentation

from overnight.models.config import PnpModelConfig
from overnight.steps.pnp import Spots, estimate_background

logger = logging.getLogger(__name__)

#: Smoothing (slices, px, px) before finding the spots that set the brightness scale.
_SCALE_SMOOTH = (1.0, 1.0, 1.0)
#: A spot is clear enough to set the scale when its smoothed peak passes this many SDs.
_SCALE_MIN_SD = 6.0


@dataclass(frozen=True)
class PnpScale:
    """Background (ADU) and one particle's smoothed peak (ADU) of a field: the input's units."""

    background_adu: float
    spot_peak_adu: float


def pnp_scale(volume: np.ndarray) -> PnpScale:
    """Background and typical single-spot brightness of a ``ZYX`` PNP channel.

    Falls back to ``_SCALE_MIN_SD`` noise SDs when fewer than three clear spots exist.
    """
    volume = np.asarray(volume, np.float32)
    background, _ = estimate_background(volume)
    sigma = _SCALE_SMOOTH if volume.shape[0] > 1 else (0.0, *_SCALE_SMOOTH[1:])
    smoothed = ndi.gaussian_filter(volume - background, sigma)
    _, noise = estimate_background(smoothed)
    peaks = (smoothed == ndi.maximum_filter(smoothed, size=(3, 5, 5))) & (
        smoothed > _SCALE_MIN_SD * noise
    )
    values = smoothed[peaks]
    peak = float(np.median(values)) if values.size >= 3 else _SCALE_MIN_SD * noise
    return PnpScale(background, max(peak, 1e-3))


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
    """``m`` density-weighted k-means centres (``(m, 3)``) of one basin's voxels."""
    order = np.argsort(-weights)
    centres = coords[order[:m]].astype(float) + rng.normal(0, 0.1, (m, 3))
    for _ in range(10):
        nearest = np.argmin(((coords[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
        for k in range(m):
            w = weights[nearest == k]
            if w.sum() > 0:
                centres[k] = (coords[nearest == k] * w[:, None]).sum(axis=0) / w.sum()
    return centres


def extract_spots(density: np.ndarray, volume: np.ndarray, config: PnpModelConfig) -> Spots:
    """Spots from a ``ZYX`` density; ``volume`` (background-subtracted, ADU) gives intensities.

    Returns one spot per particle (a basin holding ``m`` particles gives ``m`` spots of
    multiplicity 1 at its k-means centres), positions in slices and px.
    """
    peak = blob_peak(config)
    footprint = (3, config.peak_footprint_px, config.peak_footprint_px)
    maxima = (density == ndi.maximum_filter(density, size=footprint)) & (
        density > config.peak_threshold * peak
    )
    markers, n = ndi.label(maxima)
    if n == 0:
        return Spots.empty()
    basins = segmentation.watershed(-density, markers, mask=density > 0.05 * peak)
    ids = np.arange(1, n + 1)
    integral = ndi.sum(density, basins, ids) / config.density_scale
    centres = np.array(ndi.center_of_mass(density, basins, ids)).reshape(-1, 3)
    kept = np.flatnonzero(integral >= config.min_integral)
    multiplicity = np.maximum(1, np.rint(integral[kept])).astype(np.int64)
    rng = np.random.default_rng(0)
    positions, intensities = [], []
    objects = ndi.find_objects(basins)
    for index, m in zip(kept, multiplicity, strict=True):
        c = centres[index]
        zi, yi, xi = (
            int(np.clip(np.rint(v), 0, s - 1)) for v, s in zip(c, volume.shape, strict=True)
        )
        intensity = float(volume[zi, yi, xi]) / m
        if m == 1:
            positions.append(c[None])
        else:
            window = objects[index]
            local = basins[window] == index + 1
            offset = np.array([s.start for s in window])
            coords = np.argwhere(local) + offset
            positions.append(_split_basin(coords, density[window][local], int(m), rng))
        intensities.extend([intensity] * int(m))
    zyx = np.concatenate(positions) if positions else np.zeros((0, 3))
    return Spots(
        z=zyx[:, 0],
        y=zyx[:, 1],
        x=zyx[:, 2],
        intensity=np.asarray(intensities, float),
        multiplicity=np.ones(len(zyx), dtype=np.int64),
    )


class PnpModel:
    """A trained particle model: network and spot extraction. Load once, reuse."""

    def __init__(self, config: PnpModelConfig, network: object) -> None:
        from overnight.models.unet import compiled_predictor

        self.config = config
        self.network = network
        self._predict = compiled_predictor(network)

    @classmethod
    def load(cls, model_dir: Path) -> PnpModel:
        """The particle model saved in ``model_dir``."""
        from overnight.models.loading import load_network

        config, network = load_network(model_dir, PnpModelConfig)
        return cls(config, network)

    def density(self, normalised: np.ndarray) -> np.ndarray:
        """Density (``ZYX``) of a normalised ``ZYX`` PNP channel, tiled in ``YX``.

        Stacks thinner than ``min_z_slices`` are zero-padded in z (as in training) and cropped back.
        """
        from overnight.models.tiling import predict_tiled

        n_z = normalised.shape[0]
        missing = max(0, self.config.min_z_slices - n_z)
        padded = np.pad(normalised, ((missing // 2, missing - missing // 2), (0, 0), (0, 0)))
        (density,) = predict_tiled(
            self._predict,
            padded[..., None],
            self.config.tile_px,
            self.config.tile_overlap_px,
            self.config.unet.size_multiple_px,
        )
        return density[missing // 2 : missing // 2 + n_z, ..., 0]

    def detect(self, volume: np.ndarray) -> Spots:
        """Particles of a ``ZYX`` PNP channel (ADU)."""
        scale = pnp_scale(volume)
        density = self.density(pnp_input(volume, scale)) * np.float32(self.config.density_gain)
        return extract_spots(
            density, np.asarray(volume, np.float32) - scale.background_adu, self.config
        )
