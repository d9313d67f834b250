"""QC flags: cheap signals that say when an image's result is doubtful.

A model that meets an image unlike its training data does not fail loudly: it invents cells or
misses particles with the same confidence in its tables. These signals are measured on the
image and on the result itself, each in well under a second per field, and each past its
threshold raises a named flag. ``doubt`` (the number of flags raised) orders the QC web's
"doubtful first" list and ``summary.csv`` counts flagged images.

Signals (all dimensionless unless stated):

- ``cell_snr``: median body signal above the local background (a smooth surface fitted to the
  pixels away from cells, so ramps and vignetting cancel), over the background's pixel noise
  (robust σ of the high-pass image), on the cell projection (``YX``);
- ``missed_fraction``: share of the signal a smoothed threshold finds (a cheap classical
  estimate of where cells are) that no predicted cell covers: cells the network dropped;
- ``unsupported_fraction``: share of predicted cells that the smoothed threshold does not
  see over most of their area: cells the network invented in noise;
- ``elongated_fraction``: share of cells more than 1.8 times as long as wide (second
  moments);
- ``merged_fraction``: share of cells that are elongated *and* pinched across their long
  axis (a waist): touching cells merged under one label, the usual error on dim fields.
  Elongation alone also takes shapes that are no merge: cells cut by the field's edge, half
  of a cell split in two, oval cells;
- ``pnp_snr``: median detected spot intensity over the particle channel's pixel noise;
- ``median_cell_diameter_um`` against the configured range of cell sizes;
- ``small_cell_fraction``: share of cells smaller than the smallest plausible cell
  (fragments, or cells invented in noise);
- ``mean_confidence`` / ``uncertain_fraction``: the cell network's mean top-class probability
  on its foreground and the share of those pixels below 0.6 (learned pipeline only);
- ``type_uncertain_fraction``: share of cells whose type confidence is below 0.75;
- ``saturated_fraction``: share of voxels at the top of the integer range;
- ``focus_ratio``: sharpness of the sharpest slice over the median slice (cell channel), and
  whether the sharpest slice is the first or last one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from overnight.steps.cell_shape import aspect_ratios, merged_cells_mask
from overnight.steps.coverage import background_level, cell_coverage, distance_to_cells
from overnight.steps.smoothing import gaussian_filter, laplace

#: Robust σ of a normal distribution from its median absolute deviation.
_MAD_TO_SIGMA = 1.4826


class FlagThresholds(BaseModel):
    """Where each signal starts to raise its flag.

    Chosen on tuning sweeps only, never on the reported one (seed 5152026) or the accuracy
    hold-outs: ``python -m bench.robustness --seed S`` for S = 4242, 4243, 4244 (4 fields of
    384² per point) and ``--seed 4245 --only cell_brightness --values 1.25 1.75 2 2.5
    --fields 8``: 296 images, 58 with cell F1 < 0.9, of which these thresholds flag 55
    (0.948) while flagging 12 of 166 fine images (0.072). ``merged_waist`` was chosen on the
    kept runs (``--keep``, re-measured with ``--reuse``) of seeds 4242-4244, 24 in-range fields
    of 4245 (``--only spot_snr --values 8 --fields 24``) and 3 points of 4246 (``--only
    spot_snr --values 16``, ``psf_width 0.75``, ``cell_brightness 3``; 4 fields each): 300
    images, 42 with cell F1 < 0.9. Elongated cells of fine images were cut by the field's edge
    or halves of a split cell (waist 0-0.04); any waist of 0.05-0.12 keeps every bad image the
    elongation caught (41 of 42 flagged) and flags 9 of 185 fine images (10 with elongation
    alone: a split cell, seed 4246 ``psf_width`` 0.75). A solidity test (area over convex
    hull) did no better: merges of overlapping cells are 0.90-0.93, as convex as a split half.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_cell_snr: float = Field(1.4, description="body SNR per pixel below this: cells too dim")
    min_pnp_snr: float = Field(2.5, description="spot SNR below this: particles too dim")
    cell_diameter_um: tuple[float, float] = Field(
        (5.0, 17.0), description="plausible median cell diameter (µm)"
    )
    max_small_cell_fraction: float = Field(0.15, description="share of too-small cells above")
    max_missed_fraction: float = Field(
        0.04, description="share of thresholded signal outside every cell above: cells missed"
    )
    max_unsupported_fraction: float = Field(
        0.2, description="share of cells the smoothed threshold does not see above: invented"
    )
    elongated_aspect: float = Field(1.8, description="a cell longer than this × its width")
    merged_waist: float = Field(
        0.08, description="an elongated cell pinched this deep (share of its width) is merged"
    )
    max_merged_fraction: float = Field(
        0.1, description="share of elongated, pinched cells above: touching cells merged"
    )
    min_mean_confidence: float = Field(0.85, description="mean top-class probability below")
    max_uncertain_fraction: float = Field(0.12, description="uncertain foreground share above")
    max_type_uncertain_fraction: float = Field(0.2, description="uncertain-type share above")
    max_saturated_fraction: float = Field(1e-3, description="saturated voxel share above")
    min_focus_ratio: float = Field(1.02, description="sharpest / median slice sharpness below")
    min_focus_snr: float = Field(3.0, description="focus is judged only above this cell SNR")


@dataclass(frozen=True)
class QcReport:
    """The signals measured on one image and the flags they raised (names, sorted)."""

    signals: dict[str, float]
    flags: tuple[str, ...]

    @property
    def doubt(self) -> int:
        """How many flags were raised (0 = nothing doubtful)."""
        return len(self.flags)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for ``result.json``: ``flags``, ``doubt`` and rounded ``signals``."""
        signals = {
            k: (None if not math.isfinite(v) else round(v, 4)) for k, v in self.signals.items()
        }
        return {"flags": list(self.flags), "doubt": self.doubt, "signals": signals}


def pixel_noise(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Robust σ of pixel noise (ADU) in a ``YX`` image: MAD of the image minus a 2-px blur.

    Smooth structure (gradients, haze, cell bodies) is removed by the blur, so what is left is
    the noise; ``mask`` restricts the estimate to those pixels (e.g. the background).
    """
    image = np.asarray(image, np.float32)
    residual = image - gaussian_filter(image, 2.0)
    values = residual[mask] if mask is not None and mask.any() else residual.ravel()
    if values.size == 0:
        return float("nan")
    mad = float(np.median(np.abs(values - np.median(values))))
    # the residual keeps ~0.97 of white noise's σ after subtracting a σ=2 blur
    return _MAD_TO_SIGMA * mad / 0.97


def cell_snr(
    cell_image: np.ndarray,
    labels: np.ndarray,
    background: np.ndarray | None = None,
    distance: np.ndarray | None = None,
) -> float:
    """Median body signal above the local background, over the background's pixel noise.

    ``background`` is :func:`background_level` of ``cell_image`` (fitted away from the cells
    when not given), so a ramp or vignetting neither adds to nor hides the bodies' signal;
    ``distance`` is :func:`~overnight.steps.coverage.distance_to_cells` of ``labels``, when
    already at hand.
    """
    inside = labels > 0
    distance = distance_to_cells(labels) if distance is None else distance
    outside = distance > 3
    if not inside.any() or not outside.any():
        return float("nan")
    if background is None:
        background = background_level(cell_image, distance > 8)
    noise = pixel_noise(cell_image, outside)
    signal = float(np.median((cell_image - background)[inside]))
    return signal / noise if noise > 0 else float("inf")


def pnp_snr(pnp_volume: np.ndarray, spot_intensity: np.ndarray) -> float:
    """Median spot intensity (ADU above background) over the particle channel's pixel noise."""
    if len(spot_intensity) == 0:
        return float("nan")
    middle = np.asarray(pnp_volume[pnp_volume.shape[0] // 2], np.float32)
    noise = pixel_noise(middle)
    return float(np.median(spot_intensity)) / noise if noise > 0 else float("inf")


def focus_profile(cell_volume: np.ndarray) -> tuple[float, bool]:
    """Sharpest over median slice sharpness (mean squared Laplacian), and: is it an end slice."""
    if cell_volume.shape[0] < 3:
        return float("nan"), False
    step = max(1, int(np.ceil(max(cell_volume.shape[1:]) / 512)))
    sharpness = np.array(
        [
            float(np.mean(laplace(gaussian_filter(s[::step, ::step].astype(np.float32), 1.0)) ** 2))
            for s in cell_volume
        ]
    )
    best = int(np.argmax(sharpness))
    ratio = float(sharpness[best] / max(float(np.median(sharpness)), 1e-12))
    return ratio, best in (0, len(sharpness) - 1)


def network_confidence(probabilities: np.ndarray) -> tuple[float, float]:
    """Mean top-class probability on the predicted foreground, and the share below 0.6.

    ``probabilities`` is ``(Y, X, classes)`` with class 0 the background.
    """
    channels = [probabilities[..., k] for k in range(probabilities.shape[-1])]
    top = channels[0].copy()  # probabilities.max(axis=-1), without the slow short-axis reduce
    for channel in channels[1:]:
        np.maximum(top, channel, out=top)
    foreground = probabilities[..., 0] < 0.5
    if not foreground.any():
        return float("nan"), float("nan")
    values = top[foreground]
    return float(values.mean()), float((values < 0.6).mean())


def cell_signals(
    cell_image: np.ndarray,
    labels: np.ndarray,
    pixel_size_um: float,
    type_confidence: np.ndarray,
    min_diameter_um: float,
    elongated_aspect: float = 1.8,
    merged_waist: float = 0.08,
) -> dict[str, float]:
    """Signals of the cell channel and its segmentation (no network needed).

    ``min_diameter_um`` is the smallest plausible cell: smaller ones count as fragments, and
    the smoothed threshold of :func:`cell_coverage` ignores objects under half its diameter.
    Cells longer than ``elongated_aspect`` times their width count as elongated: the imaging
    model's cells are at most ~1.3:1, two touching round cells under one label ~2.2:1; those
    also pinched (:func:`~overnight.steps.cell_shape.waist` at least ``merged_waist``) count
    as merged (:func:`~overnight.steps.cell_shape.merged_cells_mask`).
    """
    ids, areas = np.unique(labels[labels > 0], return_counts=True)
    diameters = 2.0 * np.sqrt(areas / np.pi) * pixel_size_um
    median_diameter = float(np.median(diameters)) if len(ids) else float("nan")
    confident = np.asarray(type_confidence, float)
    confident = confident[np.isfinite(confident)]
    distance = distance_to_cells(labels)
    background = background_level(cell_image, distance > 8)
    min_area_px = int(np.pi * (0.25 * min_diameter_um / pixel_size_um) ** 2)
    coverage = cell_coverage(cell_image, labels, background, min_area_px, distance=distance)
    ratios = aspect_ratios(labels)
    return {
        "cell_snr": cell_snr(cell_image, labels, background, distance),
        "missed_fraction": coverage.missed_fraction,
        "unsupported_fraction": coverage.unsupported_fraction,
        "n_cells": float(len(ids)),
        "median_cell_diameter_um": median_diameter,
        "small_cell_fraction": float((diameters < min_diameter_um).mean())
        if len(ids)
        else float("nan"),
        "elongated_fraction": float((ratios > elongated_aspect).mean())
        if len(ids)
        else float("nan"),
        "merged_fraction": float(
            merged_cells_mask(labels, ratios, elongated_aspect, merged_waist).mean()
        )
        if len(ids)
        else float("nan"),
        "type_uncertain_fraction": float((confident < 0.75).mean())
        if len(confident)
        else float("nan"),
    }


def saturated_fraction(volume: np.ndarray) -> float:
    """Share of voxels at the top of an integer dtype's range (0 for floats)."""
    if not np.issubdtype(volume.dtype, np.integer):
        return 0.0
    top = np.iinfo(volume.dtype).max
    return float(np.count_nonzero(volume >= top)) / max(volume.size, 1)


def raise_flags(signals: dict[str, float], thresholds: FlagThresholds) -> tuple[str, ...]:
    """The names of the flags ``signals`` raise; a missing or NaN signal raises none."""

    def value(name: str) -> float:
        return float(signals.get(name, float("nan")))

    checks = {
        "dim_cells": value("cell_snr") < thresholds.min_cell_snr,
        "dim_particles": value("pnp_snr") < thresholds.min_pnp_snr,
        "cell_size_off": not (
            thresholds.cell_diameter_um[0]
            <= value("median_cell_diameter_um")
            <= thresholds.cell_diameter_um[1]
        )
        and math.isfinite(value("median_cell_diameter_um")),
        "fragmented": value("small_cell_fraction") > thresholds.max_small_cell_fraction,
        "missed_cells": value("missed_fraction") > thresholds.max_missed_fraction,
        "unsupported_cells": value("unsupported_fraction") > thresholds.max_unsupported_fraction,
        "merged_cells": value("merged_fraction") > thresholds.max_merged_fraction,
        "low_confidence": value("mean_confidence") < thresholds.min_mean_confidence
        or value("uncertain_fraction") > thresholds.max_uncertain_fraction,
        "types_uncertain": value("type_uncertain_fraction")
        > thresholds.max_type_uncertain_fraction,
        "saturated": value("saturated_fraction") > thresholds.max_saturated_fraction,
        # in noise every slice looks alike: judge focus only where the cells stand out
        "out_of_focus": value("cell_snr") >= thresholds.min_focus_snr
        and (value("focus_ratio") < thresholds.min_focus_ratio or value("focus_at_end") > 0.5),
    }
    return tuple(sorted(name for name, raised in checks.items() if raised))


def qc_report(
    cell_volume: np.ndarray,
    pnp_volume: np.ndarray,
    cell_image: np.ndarray,
    labels: np.ndarray,
    pixel_size_um: float,
    type_confidence: np.ndarray,
    spot_intensity: np.ndarray,
    confidence: tuple[float, float] | None = None,
    thresholds: FlagThresholds | None = None,
    raw: np.ndarray | None = None,
) -> QcReport:
    """Measure every signal of one image (``ZYX`` channels, ``YX`` projection and labels).

    ``confidence`` is :func:`network_confidence` of the cell network (None for a classical
    pipeline, whose confidence flags then stay down). ``raw`` is the image as the file stores
    it (``ZCYX``, its own dtype), for saturation; without it the channels are used.
    """
    thresholds = thresholds or FlagThresholds()
    signals = cell_signals(
        cell_image,
        labels,
        pixel_size_um,
        type_confidence,
        thresholds.cell_diameter_um[0],
        thresholds.elongated_aspect,
        thresholds.merged_waist,
    )
    signals["pnp_snr"] = pnp_snr(pnp_volume, spot_intensity)
    if confidence is not None:
        signals["mean_confidence"], signals["uncertain_fraction"] = confidence
    signals["saturated_fraction"] = (
        saturated_fraction(raw)
        if raw is not None
        else max(saturated_fraction(cell_volume), saturated_fraction(pnp_volume))
    )
    ratio, at_end = focus_profile(cell_volume)
    signals["focus_ratio"] = ratio
    signals["focus_at_end"] = float(at_end)
    return QcReport(signals, raise_flags(signals, thresholds))
