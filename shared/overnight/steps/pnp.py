"""Nanoparticle (PNP) spot detection in 3D: Laplacian of Gaussian, local maxima, brightness.

The classical baseline; :mod:`overnight.models.pnp` provides the 3D U-Net behind the same
``Spots`` result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from overnight.lazy import lazy_module
from overnight.steps.field_stats import grid_sample, robust_background, sample_step

if TYPE_CHECKING:  # the `analysis` extra, imported on first use (overnight.lazy)
    from scipy import ndimage as ndi
else:
    ndi = lazy_module("scipy.ndimage")


@dataclass(frozen=True)
class Spots:
    """Detected particles: sub-pixel positions (slices, px), intensity (ADU) and multiplicity.

    ``multiplicity`` is how many particles a spot holds (two particles closer than the PSF
    look like one spot twice as bright). ``expected``, when a detector estimates it, is the
    expected number of particles the spot stands for (a float, possibly below 1 for a doubtful
    spot whose ``multiplicity`` is 0); counting sums it per cell and settles the integer
    multiplicities to match (:func:`overnight.steps.counting.assign_particles`).
    """

    z: np.ndarray
    y: np.ndarray
    x: np.ndarray
    intensity: np.ndarray
    multiplicity: np.ndarray
    expected: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.z.size)

    @classmethod
    def empty(cls) -> Spots:
        """No spots."""
        e = np.zeros(0)
        return cls(e, e, e, e, np.zeros(0, dtype=np.int64))


#: The sample grid of a particle channel starts at every second pixel (:func:`estimate_background`).
BACKGROUND_STEP_PX = 2


def background_step(shape_zyx: tuple[int, ...]) -> int:
    """Sample grid step (px) of a ``ZYX`` particle channel of this (whole field's) shape."""
    shape_yx = (int(shape_zyx[-2]), int(shape_zyx[-1]))
    return sample_step(shape_yx, BACKGROUND_STEP_PX, int(np.prod(shape_zyx[:-2])))


def estimate_background(volume: np.ndarray) -> tuple[float, float]:
    """Median and robust standard deviation (MAD × 1.4826) of a whole ``ZYX`` field, in ADU.

    Measured on the field's sample grid (every second pixel of every slice, sparser in large
    fields: :func:`background_step`), as a field analysed in blocks measures it.
    """
    return robust_background(grid_sample(volume, background_step(volume.shape)))


def spot_response(
    volume: np.ndarray, sigma_xy_px: float, sigma_z_slices: float
) -> tuple[np.ndarray, np.ndarray]:
    """The negative scale-normalised LoG response and the Gaussian-smoothed ``ZYX`` volume.

    Both read ``4 σ`` (SciPy's truncation) around each voxel.
    """
    volume = np.asarray(volume, dtype=np.float32)
    sigma = (sigma_z_slices, sigma_xy_px, sigma_xy_px)
    response = -ndi.gaussian_laplace(volume, sigma) * (sigma_xy_px**2)
    return response, ndi.gaussian_filter(volume, sigma)


def detect_spots_log(
    volume: np.ndarray,
    sigma_xy_px: float = 1.25,
    sigma_z_slices: float = 1.25,
    threshold_sd: float = 5.0,
    min_separation_px: int = 2,
    noise_sd: float | None = None,
    background_adu: float | None = None,
) -> Spots:
    """Find bright spots in a ``ZYX`` volume by a scale-normalised Laplacian of Gaussian.

    A spot is a local maximum of the negative LoG response above ``threshold_sd`` robust
    standard deviations of that response (``noise_sd``). Positions are refined to sub-pixel by
    the intensity centroid in a 3×3×3 window; intensity is the peak of the Gaussian-smoothed
    volume above its median (``background_adu``). ``noise_sd`` and ``background_adu`` are the
    field's (measured on the whole field when ``volume`` is one block of it); None: those of
    ``volume`` (:func:`estimate_background` of the response and of the smoothed volume).
    Every spot counts once (``multiplicity`` 1).
    """
    volume = np.asarray(volume, dtype=np.float32)
    response, smoothed = spot_response(volume, sigma_xy_px, sigma_z_slices)
    noise = noise_sd if noise_sd is not None else estimate_background(response)[1]
    size = (3, 2 * min_separation_px + 1, 2 * min_separation_px + 1)
    peaks = (response == ndi.maximum_filter(response, size=size, mode="nearest")) & (
        response > threshold_sd * noise
    )
    coords = np.argwhere(peaks)
    if coords.size == 0:
        return Spots.empty()
    background = background_adu if background_adu is not None else estimate_background(smoothed)[0]
    z, y, x = refine_centroids(smoothed - background, coords)
    # Smoothing a Gaussian spot of the expected σ with the same σ lowers its peak by 2^(3/2);
    # undo that so ``intensity`` estimates the spot's amplitude in ADU.
    intensity = (smoothed[tuple(coords.T)] - background) * 2**1.5
    return Spots(
        z=z, y=y, x=x, intensity=intensity, multiplicity=np.ones(len(coords), dtype=np.int64)
    )


def refine_centroids(volume: np.ndarray, coords: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sub-pixel (z, y, x) of each integer peak in ``coords`` (N×3) by a 3×3×3 centroid."""
    padded = np.pad(np.clip(volume, 0, None), 1, mode="edge")
    offsets = (
        np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1], indexing="ij")).reshape(3, -1).T
    )
    windows = padded[tuple((coords[:, None, :] + 1 + offsets[None]).transpose(2, 0, 1))]
    weights = windows.sum(axis=1, keepdims=True)
    weights[weights == 0] = 1.0
    shift = (windows[..., None] * offsets[None]).sum(axis=1) / weights
    refined = coords + shift
    return refined[:, 0], refined[:, 1], refined[:, 2]
