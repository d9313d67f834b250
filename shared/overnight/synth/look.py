"""What the imaging model leaves open, drawn broadly: background, illumination, PSF, debris.

IMAGING_MODEL.md §1 fixes the ranges of brightness, size, noise and spot width, but not the
background's structure, the illumination's flatness, the spot's exact profile or what else lies
on the slide. A model trained on one choice of these fails on another, so every field draws them
(domain randomisation). Two *families* exist:

- ``standard``: linear background ramps, radial vignetting, out-of-focus haze (a heavily
  blurred copy of the cells), small debris specks, Gaussian spots with an anisotropy and a
  wide Gaussian halo. Training and the project's own hold-outs use it.
- ``alternate``: deliberately different mechanisms, used **only for evaluation** — a smooth
  random background field instead of ramps, an off-centre cos⁴ illumination falloff, granular
  (not smooth) body texture, a one-sided exponential rim and Moffat-profile spots. A model that
  holds here holds on a look it never saw.

All functions are pure: signals in ADU above the offset, arrays ``ZYX`` or ``YX``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

LookFamily = Literal["standard", "alternate"]


def illumination(
    rng: np.random.Generator, shape_yx: tuple[int, int], strength: float, family: LookFamily
) -> np.ndarray:
    """Relative illumination (``YX`` float32, 1 at its brightest) falling by ``strength``.

    ``standard``: radial, centred near the field centre, ``1 - strength · r²`` at the corners.
    ``alternate``: cos⁴ of the angle to an off-centre optical axis, scaled to the same falloff.
    """
    height, width = shape_yx
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    half = np.float32(max(height, width) / 2)
    cy = height / 2 + rng.uniform(-0.2, 0.2) * height
    cx = width / 2 + rng.uniform(-0.2, 0.2) * width
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * half**2)
    if family == "standard":
        falloff = r2 / max(float(r2.max()), 1e-6)
    else:
        cos4 = (1.0 / (1.0 + r2 * 1.5)) ** 2
        falloff = (1.0 - cos4) / max(float(1.0 - cos4.min()), 1e-6)
    return (1.0 - strength * falloff).astype(np.float32)


def background(
    rng: np.random.Generator, shape_yx: tuple[int, int], amplitude_adu: float, family: LookFamily
) -> np.ndarray:
    """Additive background structure (``YX`` float32, ADU, ≥ 0, peak-to-peak ``amplitude_adu``).

    ``standard``: a linear ramp in a random direction. ``alternate``: a smooth random field
    (white noise blurred at a quarter of the field side).
    """
    height, width = shape_yx
    if amplitude_adu <= 0:
        return np.zeros(shape_yx, np.float32)
    if family == "standard":
        angle = rng.uniform(0.0, 2 * np.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        ramp = np.cos(angle) * xx / width + np.sin(angle) * yy / height
    else:
        small = rng.standard_normal((max(height // 8, 4), max(width // 8, 4))).astype(np.float32)
        small = ndimage.gaussian_filter(small, max(small.shape) / 4, mode="wrap")
        ramp = ndimage.zoom(small, (height / small.shape[0], width / small.shape[1]), order=1)
        ramp = ramp[:height, :width]
    ramp = ramp - ramp.min()
    return (amplitude_adu * ramp / max(float(ramp.max()), 1e-6)).astype(np.float32)


def haze(cells_zyx: np.ndarray, fraction: float, sigma_px: float) -> np.ndarray:
    """Out-of-focus haze: the cells' mean over Z blurred by ``sigma_px``, times ``fraction``."""
    if fraction <= 0:
        return np.zeros(cells_zyx.shape[1:], np.float32)
    blurred = ndimage.gaussian_filter(cells_zyx.mean(axis=0), sigma_px, mode="nearest")
    return (fraction * blurred).astype(np.float32)


def debris(
    rng: np.random.Generator,
    shape_yx: tuple[int, int],
    n: int,
    level_adu: float,
) -> np.ndarray:
    """``n`` small bright specks (``YX`` float32, ADU): σ 0.8–2.2 px, 0.5–3× ``level_adu``.

    Too small to be cells (a few px across); a segmentation must leave them out.
    """
    out = np.zeros(shape_yx, np.float32)
    if n <= 0:
        return out
    iy = rng.integers(0, shape_yx[0], n)
    ix = rng.integers(0, shape_yx[1], n)
    for y, x in zip(iy, ix, strict=True):
        sigma = rng.uniform(0.8, 2.2)
        reach = int(np.ceil(4 * sigma))
        y0, y1 = max(y - reach, 0), min(y + reach + 1, shape_yx[0])
        x0, x1 = max(x - reach, 0), min(x + reach + 1, shape_yx[1])
        yy, xx = np.mgrid[y0:y1, x0:x1]
        amp = level_adu * rng.uniform(0.5, 3.0)
        out[y0:y1, x0:x1] += amp * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    return out


def granules(rng: np.random.Generator, shape_yx: tuple[int, int], scale_px: float) -> np.ndarray:
    """Granular texture (``YX`` float32, mean 0, std 1): sparse bright grains of ``scale_px``."""
    seeds = (rng.random(shape_yx) < 1.0 / (4.0 * scale_px**2)).astype(np.float32)
    seeds *= rng.exponential(1.0, shape_yx).astype(np.float32)
    texture = ndimage.gaussian_filter(seeds, scale_px / 2)
    texture -= texture.mean()
    return texture / max(float(texture.std()), 1e-6)


def spot_profile_xy(
    distance_sq: np.ndarray, sigma_px: float, halo: float, family: LookFamily
) -> np.ndarray:
    """Lateral spot profile at squared distances (px²), peak 1.

    ``standard``: ``(1 - halo)·G(σ) + halo·G(2.5σ)`` (a Gaussian core with a wide halo).
    ``alternate``: a Moffat profile with β = 2.5 and the same half width as ``G(σ)``.
    """
    if family == "standard":
        core = np.exp(-distance_sq / (2 * sigma_px**2))
        wide = np.exp(-distance_sq / (2 * (2.5 * sigma_px) ** 2))
        return (1.0 - halo) * core + halo * wide
    beta = 2.5
    fwhm = 2.3548 * sigma_px
    alpha_sq = fwhm**2 / (4 * (2 ** (1 / beta) - 1))
    return (1.0 + distance_sq / alpha_sq) ** -beta
