"""QC flags on doubtful skin planes, from cheap signals the analysis already has.

A plane is doubtful when its numbers may be wrong without anything failing: the drug is lost
in the noise, the structure channel is too flat to segment, the compartment model is unsure,
or the compartments it found do not fit the depth (IMAGING_MODEL.md §2: stratum corneum at
0–15 µm, viable epidermis 15–60 µm, dermis and fat below, follicles crossing every plane but
never filling it). :func:`flag_planes` is a pure function of one ``ZCYX`` stack, its labels
and the model's per-pixel confidence; it reads nothing and writes nothing.

Flags (:class:`PlaneFlag`):

- ``low_drug_snr`` — after dosing, the brightest compartment's mean drug signal is below
  ``min_drug_snr`` × the pixel noise σ;
- ``low_structure_contrast`` — the structure channel's 1–99 % range is below
  ``min_structure_contrast`` × its pixel noise σ;
- ``uncertain_segmentation`` — the mean over pixels of the largest class probability is
  below ``min_mean_max_probability`` (the model hesitates between compartments over much of
  the plane: in the tuning sweeps, the planes where the viable epidermis gives way to dermis
  at 60–75 µm, more so at low contrast); the reason also gives the share of pixels below
  ``unsure_probability``;
- ``unsure_follicle`` — the mean largest class probability over the pixels labelled
  ``hair_follicle`` is below ``min_follicle_max_probability`` (at least
  ``min_follicle_share`` of the plane labelled so): a follicle the model is unsure of is
  usually mis-drawn (small follicles under §2's 50 µm, spurious ones), and the plane-wide
  signals miss it because a follicle is a few per cent of the plane;
- ``implausible_compartments`` — a compartment covers more of the plane than its depth
  allows (``max_fraction_by_depth``), or unlabelled pixels cover more than ``max_none``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

#: The compartment that :attr:`PlaneFlag.UNSURE_FOLLICLE` watches.
FOLLICLE = "hair_follicle"

#: Pixel-noise σ from neighbour differences: MAD / 0.6745 / √2 (robust to edges and texture).
_MAD_TO_SD = 1.0 / (0.6745 * np.sqrt(2.0))


class PlaneFlag(StrEnum):
    """Why a plane is doubtful."""

    LOW_DRUG_SNR = "low_drug_snr"
    LOW_STRUCTURE_CONTRAST = "low_structure_contrast"
    UNCERTAIN_SEGMENTATION = "uncertain_segmentation"
    UNSURE_FOLLICLE = "unsure_follicle"
    IMPLAUSIBLE_COMPARTMENTS = "implausible_compartments"


#: Largest plausible plane fraction of a compartment by depth: ``(from_um, to_um, fraction)``
#: windows; outside every window of a compartment there is no bound. Generous on purpose:
#: layers are uneven across a plane, and the flag is for planes that cannot be right.
DEFAULT_MAX_FRACTION_BY_DEPTH: Mapping[str, tuple[tuple[float, float, float], ...]] = {
    "stratum_corneum": ((45.0, float("inf"), 0.15),),
    "viable_epidermis": ((0.0, 5.0, 0.5), (110.0, float("inf"), 0.3)),
    "dermis": ((0.0, 12.0, 0.2),),
    "adipose": ((0.0, 30.0, 0.1),),
    "hair_follicle": ((0.0, float("inf"), 0.7),),
}


@dataclass(frozen=True)
class QcThresholds:
    """Where a signal makes a plane doubtful (see the module docstring)."""

    min_drug_snr: float = 2.0
    min_structure_contrast: float = 6.0
    #: ``uncertain_segmentation`` below this plane-wide mean of the largest class probability.
    #: Chosen on the tuning sweeps ``python -m bench.robustness_skin --series 1 --size 256
    #: --seed 4242 / 4243 / 4244 --out /tmp/…`` (930 planes each; 19 / 32 / 48 with
    #: pixel-weighted IoU < 0.8, nearly all at the epidermis–dermis transition, 60–75 µm):
    #: 0.89 flags 100 % / 100 % / 92 % of them and 8.5 % / 8.0 % / 0.0 % of the fine planes
    #: (0.885: 100 / 88 / 88 %, 4.6 / 6.2 / 0.0 %; 0.895: 100 / 100 / 100 %, 9.9 / 11.8 /
    #: 4.2 %; the earlier 0.85, chosen on 52 planes: 0 / 19 / 10 % of bad planes). Checked on
    #: seed 4245, not used to choose (49 bad planes): 86 %, 11.5 %; the misses are planes of
    #: IoU 0.77–0.78 at 67 µm, the false alarms nearly all IoU 0.80–0.85 at the same depth.
    #: Measured and not taken: the share of pixels under probability 0.6 (AUC 0.95–0.99;
    #: bounds chosen on 4242 / 4243 caught 83 % on 4244), the entropy and the model's own
    #: expected IoU (as good, less plain), the predicted follicles' size and count and the
    #: disagreement with the neighbouring depth (AUC 0.46–0.88).
    min_mean_max_probability: float = 0.89
    #: a pixel counts as unsure (the share in the reason) below this largest class probability
    unsure_probability: float = 0.6
    #: ``unsure_follicle``: mean largest class probability over the follicle's pixels, checked
    #: where they are at least ``min_follicle_share`` of the plane (7 px at 256² px; 0.1 %
    #: caught 3–24 points fewer of the wrong follicles below, 0 up to 3 more). Same sweeps: over
    #: the 101 planes whose follicle (≥ 0.5 % of the plane) has IoU < 0.5 it was 0.56–0.85
    #: (10–90 %), over the 2643 with IoU ≥ 0.5 0.95–0.98. With the mean bound above, 0.85
    #: flags 83 / 83 / 77 % of the IoU < 0.5 follicles (the mean alone: 59 / 34 / 43 %) and
    #: raises the fine planes flagged to 10.5 / 14.0 / 2.2 %, most added ones planes whose
    #: follicle IoU is < 0.8 (0.8: 83 / 54 / 77 %, 9.5 / 11.7 / 2.0 %; 0.88: 83 / 97 / 77 %,
    #: 10.5 / 15.1 / 3.1 %). Seed 4245: 88 % of 26 such follicles; fine planes flagged 13.8 %.
    min_follicle_max_probability: float = 0.85
    min_follicle_share: float = 0.0001
    max_none: float = 0.2
    max_fraction_by_depth: Mapping[str, tuple[tuple[float, float, float], ...]] = field(
        default_factory=lambda: dict(DEFAULT_MAX_FRACTION_BY_DEPTH)
    )


@dataclass(frozen=True)
class PlaneQuality:
    """The QC signals of one plane and the flags they raise.

    Attributes
    ----------
    z : int
        Plane index in the stack.
    depth_um : float
    drug_snr : float
        Brightest compartment's mean drug signal above ``drug_level_adu`` / pixel noise σ.
    structure_contrast : float
        Structure channel 1–99 % range / its pixel noise σ.
    mean_max_probability : float
        Mean over pixels of the model's largest class probability (NaN when not given).
    unsure_share : float
        Share of pixels whose largest class probability is below ``unsure_probability``
        (NaN when not given).
    follicle_max_probability : float
        Mean largest class probability over the pixels labelled ``hair_follicle`` (NaN when
        not given or fewer than ``min_follicle_share`` of the plane).
    fractions : dict of str to float
        Share of the plane's pixels per compartment (and ``"none"``).
    flags : tuple of PlaneFlag
    reasons : tuple of str
        One sentence per flag, with the numbers.
    """

    z: int
    depth_um: float
    drug_snr: float
    structure_contrast: float
    mean_max_probability: float
    fractions: dict[str, float]
    flags: tuple[PlaneFlag, ...]
    reasons: tuple[str, ...]
    unsure_share: float = float("nan")
    follicle_max_probability: float = float("nan")

    @property
    def doubtful(self) -> bool:
        """Whether any flag is raised."""
        return bool(self.flags)


def pixel_noise_sd(plane: np.ndarray) -> float:
    """Robust σ of pixel noise of a 2D ``plane`` from horizontal neighbour differences.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(pixel_noise_sd(100 + rng.normal(0, 5, (128, 128))), 0)
    5.0
    """
    plane = np.asarray(plane, dtype=np.float64)
    differences = np.diff(plane, axis=-1).ravel()
    mad = np.median(np.abs(differences - np.median(differences)))
    return float(mad * _MAD_TO_SD)


def flag_planes(
    stack: np.ndarray,
    labels: np.ndarray,
    depths_um: Sequence[float],
    compartments: Sequence[str],
    *,
    drug_level_adu: float | None = None,
    max_probability: np.ndarray | None = None,
    expect_drug: bool = True,
    structure_channel: int = 0,
    drug_channel: int = 1,
    thresholds: QcThresholds | None = None,
) -> tuple[PlaneQuality, ...]:
    """QC signals and flags of every plane of one timepoint.

    Parameters
    ----------
    stack : ndarray of shape (Z, C, Y, X)
        The raw stack (structure and drug channels).
    labels : ndarray of shape (Z, Y, X)
        Compartment labels, 0 = none, k = ``compartments[k - 1]``.
    depths_um : sequence of float, length Z
    compartments : sequence of str
    drug_level_adu : float, optional
        Detector level of the drug channel (the pre-dose mean). ``None`` estimates it per
        plane from its darkest pixels (1st percentile + 2.33 σ, the level of pure noise);
        where every pixel holds drug that estimate is high, so the SNR errs low.
    max_probability : ndarray of shape (Z, Y, X), optional
        The model's largest class probability per pixel; without it neither
        ``uncertain_segmentation`` nor ``unsure_follicle`` is raised.
    expect_drug : bool
        False for pre-dose stacks, where a drug signal at noise level is expected.
    structure_channel, drug_channel : int
    thresholds : QcThresholds, optional

    Returns
    -------
    tuple of PlaneQuality
        One per plane, in stack order.

    Raises
    ------
    ValueError
        When the shapes do not fit together.
    """
    limits = thresholds or QcThresholds()
    stack = np.asarray(stack)
    if stack.ndim != 4 or labels.shape != (stack.shape[0], *stack.shape[2:]):
        raise ValueError(
            f"stack (Z, C, Y, X) and labels (Z, Y, X) must fit, got {stack.shape} and "
            f"{labels.shape}"
        )
    if len(depths_um) != stack.shape[0]:
        raise ValueError(f"{len(depths_um)} depths for {stack.shape[0]} planes")
    if max_probability is not None and max_probability.shape != labels.shape:
        raise ValueError(
            f"max_probability {max_probability.shape} must have the labels' shape {labels.shape}"
        )
    names = ("none", *compartments)
    follicle_label = names.index(FOLLICLE) if FOLLICLE in compartments else -1
    out = []
    for z, depth in enumerate(depths_um):
        plane_labels = labels[z]
        counts = np.bincount(plane_labels.ravel(), minlength=len(names))[: len(names)]
        fractions = {n: float(c) / plane_labels.size for n, c in zip(names, counts, strict=True)}
        drug = stack[z, drug_channel].astype(np.float64)
        drug_noise = max(pixel_noise_sd(drug), 1e-6)
        sums = np.bincount(plane_labels.ravel(), drug.ravel(), minlength=len(names))
        means = sums[1 : len(names)] / np.maximum(counts[1:], 1)
        present = counts[1:] > 0
        level = (
            float(np.percentile(drug, 1.0)) + 2.33 * drug_noise
            if drug_level_adu is None
            else drug_level_adu
        )
        peak = float(np.max(means[present])) - level if present.any() else 0.0
        drug_snr = peak / drug_noise
        structure = stack[z, structure_channel].astype(np.float64)
        low, high = np.percentile(structure, [1.0, 99.0])
        contrast = float(high - low) / max(pixel_noise_sd(structure), 1e-6)
        confidence, unsure, follicle = _confidence(
            None if max_probability is None else max_probability[z],
            plane_labels == follicle_label,
            limits,
        )
        flags: list[PlaneFlag] = []
        reasons: list[str] = []
        if expect_drug and drug_snr < limits.min_drug_snr:
            flags.append(PlaneFlag.LOW_DRUG_SNR)
            reasons.append(f"drug SNR {drug_snr:.1f} < {limits.min_drug_snr:g}")
        if contrast < limits.min_structure_contrast:
            flags.append(PlaneFlag.LOW_STRUCTURE_CONTRAST)
            reasons.append(
                f"structure contrast {contrast:.1f} noise σ < {limits.min_structure_contrast:g}"
            )
        # comparisons with NaN are False: no probabilities, no flag
        if confidence < limits.min_mean_max_probability:
            flags.append(PlaneFlag.UNCERTAIN_SEGMENTATION)
            reasons.append(
                f"mean max probability {confidence:.3f} < {limits.min_mean_max_probability:g} "
                f"({unsure:.0%} of pixels below {limits.unsure_probability:g})"
            )
        if follicle < limits.min_follicle_max_probability:
            flags.append(PlaneFlag.UNSURE_FOLLICLE)
            reasons.append(
                f"follicle mean max probability {follicle:.2f} < "
                f"{limits.min_follicle_max_probability:g}"
            )
        implausible = _implausible(fractions, float(depth), limits)
        if implausible:
            flags.append(PlaneFlag.IMPLAUSIBLE_COMPARTMENTS)
            reasons.append("; ".join(implausible))
        out.append(
            PlaneQuality(
                z,
                float(depth),
                drug_snr,
                contrast,
                confidence,
                fractions,
                tuple(flags),
                tuple(reasons),
                unsure,
                follicle,
            )
        )
    return tuple(out)


def _confidence(
    max_probability: np.ndarray | None, follicle: np.ndarray, limits: QcThresholds
) -> tuple[float, float, float]:
    """``(mean max probability, unsure share, follicle mean max probability)`` of one plane.

    NaN where ``max_probability`` is not given; the follicle's NaN also where its pixels are
    fewer than ``limits.min_follicle_share`` of the plane.

    Examples
    --------
    >>> probability = np.array([[0.99, 0.5], [0.7, 0.95]])
    >>> follicle = np.array([[False, True], [True, False]])
    >>> [round(v, 3) for v in _confidence(probability, follicle, QcThresholds())]
    [0.785, 0.25, 0.6]
    """
    if max_probability is None:
        return float("nan"), float("nan"), float("nan")
    probability = np.asarray(max_probability, dtype=np.float64)
    n_follicle = int(np.count_nonzero(follicle))
    follicle_mean = (
        float(np.mean(probability[follicle]))
        if n_follicle and n_follicle >= limits.min_follicle_share * probability.size
        else float("nan")
    )
    return (
        float(np.mean(probability)),
        float(np.mean(probability < limits.unsure_probability)),
        follicle_mean,
    )


def _implausible(
    fractions: Mapping[str, float], depth_um: float, limits: QcThresholds
) -> list[str]:
    """Sentences for each compartment fraction its depth does not allow."""
    found = []
    if fractions.get("none", 0.0) > limits.max_none:
        found.append(f"{fractions['none']:.0%} unlabelled > {limits.max_none:.0%}")
    for name, windows in limits.max_fraction_by_depth.items():
        share = fractions.get(name, 0.0)
        for start, stop, most in windows:
            if start <= depth_um < stop and share > most:
                found.append(f"{name} {share:.0%} at {depth_um:g} µm > {most:.0%}")
    return found
