"""The cell ("scatter") channel of a synthetic digital-cytometry field, before camera noise.

Each cell is a smooth textured body whose signal falls off at the mask edge, plus a brighter
rim peaking ``rim_inset_px`` inside the mask edge. Where two cells touch, both bodies fall off
at the shared edge, so the boundary pixels are darker than the rims on either side. Each slice
is blurred by ``sqrt(focus_blur² + (defocus_blur_per_slice · |z - z_cell|)²)``, with ``z_cell``
the focal plane of the cell nearest to the pixel. The blur is read from a stack of the sharp
image blurred at a few fixed σ (FFT), interpolated linearly in σ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft, ndimage

from overnight.synth.look import LookFamily, granules

#: Ratio between successive blur levels of the stack.
_BLUR_STEP = 1.5
#: The body falls to 1 - 1/e of its level this far (px) inside the mask edge.
_BODY_EDGE_PX = 1.0


@dataclass(frozen=True)
class ScatterLook:
    """How the cells of one field look in channel 0 (signals in ADU above the offset)."""

    rim_contrast: float
    rim_width_px: float
    rim_inset_px: float
    texture_strength: float
    texture_scale_px: float
    focus_blur_px: float
    defocus_blur_px_per_slice: float
    family: LookFamily = "standard"


def edge_distance_px(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance to the cell edge and the owning (or nearest) cell of each pixel.

    Parameters
    ----------
    labels : ndarray of shape (Y, X)
        Cell instance labels, 0 = background.

    Returns
    -------
    edge_px : ndarray of shape (Y, X), float32
        Distance (px) from the pixel centre to its cell's mask edge, positive inside a cell
        (0.5 on the outermost mask pixel), negative in the background.
    owner : ndarray of shape (Y, X)
        The pixel's cell id, or for background the id of the nearest cell (0 if none).
    """
    background = labels == 0
    if background.all():
        return np.full(labels.shape, -np.inf, np.float32), np.zeros_like(labels)
    outside, (near_y, near_x) = ndimage.distance_transform_edt(background, return_indices=True)
    edge_px = (0.5 - outside).astype(np.float32)
    owner = labels[near_y, near_x]
    for index, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        mask = labels[box] == index + 1
        inside = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        edge_px[box][mask] = inside[mask] - 0.5
    return edge_px, owner


def sharp_scatter(
    rng: np.random.Generator,
    labels: np.ndarray,
    cell_signal_adu: np.ndarray,
    look: ScatterLook,
) -> tuple[np.ndarray, np.ndarray]:
    """Render the in-focus, unblurred cell channel; also return the owner map.

    ``cell_signal_adu[i]`` is the body signal of cell ``i`` (index 0 = background, unused).
    Returns (signal ``YX`` float32 in ADU, owner ``YX`` of :func:`edge_distance_px`).
    """
    edge_px, owner = edge_distance_px(labels)
    if look.family == "standard":
        texture = ndimage.gaussian_filter(
            rng.standard_normal(labels.shape).astype(np.float32), look.texture_scale_px
        )
    else:
        texture = granules(rng, labels.shape, look.texture_scale_px)
    texture *= look.texture_strength / max(float(texture.std()), 1e-6)
    level = cell_signal_adu.astype(np.float32)[owner]
    inside = np.clip(edge_px, 0.0, None)
    body = (labels > 0) * (1.0 + texture).clip(0.0) * (1.0 - np.exp(-inside / _BODY_EDGE_PX))
    body_at_rim = 1.0 - np.exp(-look.rim_inset_px / _BODY_EDGE_PX)
    rim = (look.rim_contrast - body_at_rim) * rim_profile(  # rim peak = rim_contrast · body
        edge_px - look.rim_inset_px, look.rim_width_px, look.family
    )
    return (level * (body + rim)).astype(np.float32), owner


def rim_profile(offset_px: np.ndarray, width_px: float, family: LookFamily) -> np.ndarray:
    """Rim brightness (peak 1) at ``offset_px`` inward from the rim's peak.

    ``standard``: a Gaussian of σ ``width_px``. ``alternate``: steep towards the mask edge
    (σ ``width_px / 2``), an exponential tail of ``1.5 · width_px`` into the cell.
    """
    if family == "standard":
        return np.exp(-(offset_px**2) / (2 * width_px**2))
    outer = np.exp(-(offset_px**2) / (2 * (width_px / 2) ** 2))
    inner = np.exp(-np.clip(offset_px, 0.0, None) / (1.5 * width_px))
    return np.where(offset_px < 0, outer, inner)


def blur_levels(max_sigma_px: float, focus_sigma_px: float) -> np.ndarray:
    """Blur σ levels (px): ``focus_sigma_px`` times powers of 1.5, up to ``max_sigma_px``."""
    n_levels = 1 + max(0, int(np.ceil(np.log(max_sigma_px / focus_sigma_px) / np.log(_BLUR_STEP))))
    return focus_sigma_px * _BLUR_STEP ** np.arange(n_levels)


def gaussian_stack(image: np.ndarray, sigmas_px: np.ndarray) -> np.ndarray:
    """``image`` (``YX``) blurred with each σ in ``sigmas_px``: ``(K, Y, X)`` float32.

    Zero padding of 3 σ_max keeps light from wrapping around the field (FFT blur).
    """
    pad = int(np.ceil(3 * sigmas_px.max()))
    padded = np.pad(image, pad)
    shape = tuple(fft.next_fast_len(n, real=True) for n in padded.shape)
    spectrum = fft.rfft2(padded, s=shape)
    freq_sq = fft.fftfreq(shape[0])[:, None] ** 2 + fft.rfftfreq(shape[1])[None, :] ** 2
    height, width = image.shape
    stack = np.empty((len(sigmas_px), height, width), np.float32)
    for k, sigma in enumerate(sigmas_px):
        kernel = np.exp(-2 * np.pi**2 * sigma**2 * freq_sq)
        blurred = fft.irfft2(spectrum * kernel, s=shape)
        stack[k] = blurred[pad : pad + height, pad : pad + width]
    return stack


def render_scatter(
    rng: np.random.Generator,
    labels: np.ndarray,
    cell_signal_adu: np.ndarray,
    cell_focus_z: np.ndarray,
    n_z: int,
    look: ScatterLook,
) -> np.ndarray:
    """Render the cell channel as ``ZYX`` float32 signal (ADU above the offset).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the body texture.
    labels : ndarray of shape (Y, X)
        Cell instance labels ``1..n``.
    cell_signal_adu, cell_focus_z : ndarray of shape (n + 1,)
        Per cell id: body signal (ADU) and focal plane (slice); index 0 is unused.
    n_z : int
        Slices to render.
    look : ScatterLook
        Rim, texture and blur of the field.
    """
    sharp, owner = sharp_scatter(rng, labels, cell_signal_adu, look)
    slices = np.arange(n_z, dtype=np.float32)[:, None]
    defocus = look.defocus_blur_px_per_slice * np.abs(slices - cell_focus_z[None, :])
    sigma = np.sqrt(look.focus_blur_px**2 + defocus**2)  # (Z, n + 1)
    levels = blur_levels(float(sigma.max()), look.focus_blur_px)
    stack = gaussian_stack(sharp, levels)
    if len(levels) == 1:
        return np.repeat(stack, n_z, axis=0)
    upper = np.clip(np.searchsorted(levels, sigma), 1, len(levels) - 1)
    weight = ((sigma - levels[upper - 1]) / (levels[upper] - levels[upper - 1])).clip(0.0, 1.0)
    out = np.empty((n_z, *labels.shape), np.float32)
    for z in range(n_z):
        hi = upper[z][owner][None]
        w = weight[z].astype(np.float32)[owner]
        below = np.take_along_axis(stack, hi - 1, axis=0)[0]
        above = np.take_along_axis(stack, hi, axis=0)[0]
        out[z] = below + w * (above - below)
    return out
