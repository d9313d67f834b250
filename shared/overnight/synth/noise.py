"""Camera noise of the dark-field microscope: offset, shot noise, read noise, uint16."""

from __future__ import annotations

import numpy as np

_UINT16_MAX = np.iinfo(np.uint16).max


def camera_adu(
    rng: np.random.Generator,
    signal_adu: np.ndarray,
    offset_adu: float,
    gain: float,
    read_noise_adu: float,
) -> np.ndarray:
    """Record ``signal_adu`` as a camera does: ``offset + gain·Poisson(signal/gain) + N(0, σ)``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the noise.
    signal_adu : ndarray, any shape
        Expected signal above the offset (ADU); negative values count as 0.
    offset_adu : float
        Dark level (ADU).
    gain : float
        ADU per photo-electron (> 0).
    read_noise_adu : float
        Standard deviation of the Gaussian read noise (ADU).

    Returns
    -------
    ndarray of uint16, same shape
        Rounded and clipped to 0–65535.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> frame = camera_adu(rng, np.zeros((64, 64)), 100.0, 1.0, 5.0)
    >>> frame.dtype.name, 95 < frame.mean() < 105
    ('uint16', True)
    """
    electrons = rng.poisson(np.clip(signal_adu, 0.0, None) / gain).astype(np.float32)
    noise = rng.standard_normal(signal_adu.shape, dtype=np.float32)
    adu = np.float32(offset_adu) + np.float32(gain) * electrons + np.float32(read_noise_adu) * noise
    return np.clip(np.rint(adu), 0, _UINT16_MAX).astype(np.uint16)
