"""Drug kinetics of the synthetic skin model: one absorption–elimination curve per tissue.

In tissue c at depth d (IMAGING_MODEL.md §2)::

    C(t) = S_c · (exp(−k_e,c·τ) − exp(−k_a,c·τ))   for τ = t − lag_c − d / v_c > 0, else 0

Follicles (with their sebaceous glands) are the main route of entry: the shortest lag, the
largest k_a and the fastest penetration. The scales S_c are relative here and set in ADU by
:func:`draw_drug_curves` so that the brightest compartment mean reaches a chosen SNR at Cmax.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class DrugCurve:
    """True drug signal of one tissue over time and depth.

    Attributes
    ----------
    scale_adu : float
        ``S_c``: amplitude (ADU above the detector offset).
    ka_per_min, ke_per_min : float
        Absorption and elimination rate constants (1/min), ``ka > ke``.
    lag_min : float
        Delay before the drug reaches the tissue at the surface (min).
    speed_um_per_min : float
        Penetration speed ``v_c``: a plane at depth d starts ``d / v_c`` minutes later.
    """

    scale_adu: float
    ka_per_min: float
    ke_per_min: float
    lag_min: float
    speed_um_per_min: float

    def signal(self, time_min: ArrayLike, depth_um: ArrayLike) -> np.ndarray:
        """Mean drug signal (ADU above offset) at ``time_min`` and ``depth_um`` (broadcast)."""
        t = np.asarray(time_min, dtype=float)
        d = np.asarray(depth_um, dtype=float)
        tau = np.maximum(t - self.lag_min - d / self.speed_um_per_min, 0.0)
        return self.scale_adu * (np.exp(-self.ke_per_min * tau) - np.exp(-self.ka_per_min * tau))

    @property
    def peak_delay_min(self) -> float:
        """τ at the maximum: ``ln(ka/ke) / (ka − ke)`` (min)."""
        return math.log(self.ka_per_min / self.ke_per_min) / (self.ka_per_min - self.ke_per_min)

    @property
    def peak_adu(self) -> float:
        """Largest value of :meth:`signal` at any depth (ADU above offset)."""
        tau = self.peak_delay_min
        return self.scale_adu * (
            math.exp(-self.ke_per_min * tau) - math.exp(-self.ka_per_min * tau)
        )


@dataclass(frozen=True)
class KineticsPrior:
    """Uniform ranges (low, high) from which one tissue's :class:`DrugCurve` is drawn."""

    relative_scale: tuple[float, float]
    ka_per_min: tuple[float, float]
    ke_per_min: tuple[float, float]
    lag_min: tuple[float, float]
    speed_um_per_min: tuple[float, float]


#: Per tissue: follicles first (shortest lag, largest ka, ranges disjoint from the others),
#: then the deeper, the later and weaker. Columns: relative scale, ka (1/min), ke (1/min),
#: lag (min), speed (µm/min). Most compartments peak within the 2–4 h of a series (follicles
#: after ~10–30 min, deep dermis and fat after ~1.5–2.5 h), so terminal phases can be seen.
KINETICS_PRIORS: Mapping[str, KineticsPrior] = {
    "hair_follicle": KineticsPrior((1.0, 1.0), (0.08, 0.2), (0.01, 0.025), (0, 3), (4, 8)),
    "stratum_corneum": KineticsPrior((0.5, 0.9), (0.04, 0.08), (0.008, 0.02), (3, 8), (1, 2.5)),
    "viable_epidermis": KineticsPrior((0.3, 0.6), (0.03, 0.06), (0.008, 0.02), (5, 15), (2, 4)),
    "dermis": KineticsPrior((0.2, 0.45), (0.025, 0.05), (0.006, 0.015), (8, 20), (3, 6)),
    "adipose": KineticsPrior((0.25, 0.5), (0.02, 0.04), (0.005, 0.012), (10, 20), (3, 6)),
}


def peak_for_snr(snr: float, gain: float, read_noise_adu: float) -> float:
    """Signal S (ADU) with ``S / sqrt(gain·S + σ²) = snr`` (Poisson + Gaussian noise)."""
    a = snr * snr * gain
    return (a + math.sqrt(a * a + 4.0 * snr * snr * read_noise_adu**2)) / 2.0


def draw_drug_curves(
    rng: np.random.Generator,
    tissues: tuple[str, ...],
    *,
    peak_adu: float,
    priors: Mapping[str, KineticsPrior] = KINETICS_PRIORS,
) -> dict[str, DrugCurve]:
    """Draw one curve per tissue; the largest peak over tissues equals ``peak_adu``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the parameters.
    tissues : tuple of str
        Tissue names, each a key of ``priors``.
    peak_adu : float
        Cmax of the strongest tissue (ADU above offset), e.g. from :func:`peak_for_snr`.
    priors : mapping of str to KineticsPrior
        Parameter ranges per tissue.

    Returns
    -------
    dict of str to DrugCurve
    """
    raw: dict[str, DrugCurve] = {}
    for name in tissues:
        prior = priors[name]
        ka = rng.uniform(*prior.ka_per_min)
        ke = min(rng.uniform(*prior.ke_per_min), ka / 2.0)  # keep ka > ke with a clear peak
        raw[name] = DrugCurve(
            scale_adu=rng.uniform(*prior.relative_scale),
            ka_per_min=float(ka),
            ke_per_min=float(ke),
            lag_min=float(rng.uniform(*prior.lag_min)),
            speed_um_per_min=float(rng.uniform(*prior.speed_um_per_min)),
        )
    # rescale so that each tissue's Cmax is its relative scale × peak of the strongest
    peaks = {name: curve.peak_adu / curve.scale_adu for name, curve in raw.items()}
    strongest = max(curve.scale_adu for curve in raw.values())
    return {
        name: DrugCurve(
            scale_adu=peak_adu * curve.scale_adu / strongest / peaks[name],
            ka_per_min=curve.ka_per_min,
            ke_per_min=curve.ke_per_min,
            lag_min=curve.lag_min,
            speed_um_per_min=curve.speed_um_per_min,
        )
        for name, curve in raw.items()
    }
