"""Synthetic SRS skin-pharmacokinetics series with ground truth (IMAGING_MODEL.md §2).

One series is one skin region imaged at the same depths at 6–16 irregular timepoints over
up to 240 min. The tissue (:mod:`overnight.synth.skin_tissue`) is drawn once; per timepoint
only the drug (:mod:`overnight.synth.skin_drug`), the noise and a shift of up to
``max_shift_px`` pixels (stage jitter) change.

Files written by :func:`write_skin_dataset` under ``OUT``:

- ``images/<image_id>.tif`` — one per timepoint, uint16, axes ``ZCYX`` (Z = depth,
  C0 = CH₂ lipid 2850 cm⁻¹, C1 = drug 2250 cm⁻¹), 0.5 µm pixels (XResolution in px/cm);
  ``image_id`` follows the lab convention
  ``<YYYYMMDD>_<HHMM>_<user>_<instrument>_<sample>_t-<min>min``, e.g.
  ``20261125_0900_synth_srs_skin01_t-035min`` (date and time are the session start);
- ``images/<image_id>.json`` — sidecar: ``{"time_min": 35, "depths_um": [0.0, 27.5, ...],
  "pixel_size_um": 0.5, "axes": "ZCYX", "channel_names": [...]}``; ``depths_um[z]`` is the
  depth of plane z below the skin surface;
- ``truth/<image_id>/labels.tif`` — ``ZYX`` uint8 compartment labels (0 = none,
  k = ``compartments[k - 1]``);
- ``truth/curves.json`` — the drug model, its parameters per compartment, noise and SNR;
- ``truth/profiles.csv`` — ``time, depth, compartment, signal, n_px``: the exact mean drug
  signal (ADU above the detector offset) of each labelled compartment in each plane.

Both channels carry a detector offset (``offset_adu``, 100 by default) so that noise around
zero is not clipped; the drug channel is otherwise zero until the drug arrives (t = 0 is
always a pre-dose image).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from numpy.typing import ArrayLike

from overnight.errors import ConfigError
from overnight.synth.noise import camera_adu
from overnight.synth.skin_drug import DrugCurve, draw_drug_curves, peak_for_snr
from overnight.synth.skin_look import LOOKS, SPEC_LOOK, SkinLook, draw
from overnight.synth.skin_tissue import TISSUES, SkinTissue, draw_skin_tissue

logger = logging.getLogger(__name__)

#: Compartments labelled 1..5 in this order by default; any subset/order of
#: :data:`~overnight.synth.skin_tissue.TISSUES` may be given (unlisted tissue is label 0).
DEFAULT_COMPARTMENTS: tuple[str, ...] = TISSUES
CHANNEL_NAMES: tuple[str, str] = ("ch2_lipid_2850", "drug_2250")
PIXEL_SIZE_UM = 0.5
SESSION_START = datetime(2026, 11, 25, 9, 0)


@dataclass(frozen=True)
class DetectorNoise:
    """Poisson + Gaussian detector model: ``offset + gain·Poisson(S/gain) + N(0, σ)`` (ADU)."""

    gain: float
    read_noise_adu: float
    offset_adu: float


@dataclass(frozen=True, eq=False)
class SkinSeries:
    """A skin region at several depths and timepoints, with its true drug kinetics.

    Images are made on demand (:meth:`stack`) so that a 1024², 12-depth, 16-timepoint series
    does not sit in memory at once; the same series always gives the same pixels.

    Attributes
    ----------
    tissue : SkinTissue
        Noise-free structure on a canvas ``2·max_shift_px`` larger than the images.
    times_min : ndarray of shape (T,)
        Acquisition times (min after dosing), increasing, first 0.
    depths_um : ndarray of shape (Z,)
        Plane depths below the surface (µm), increasing.
    compartments : tuple of str
        Label k is ``compartments[k - 1]``.
    curves : mapping of str to DrugCurve
        True kinetics of every tissue (also those not labelled).
    noise : DetectorNoise
    drug_snr : float
        Mean drug signal / noise σ at Cmax in the strongest compartment.
    shifts_yx : tuple of (int, int)
        Offset of each timepoint's field in the canvas (stage jitter), px.
    noise_seeds : tuple of int
        Seed of each timepoint's noise.
    size_yx : (int, int)
        Image plane size (px).
    pixel_size_um : float
    look : str
        Name of the :class:`~overnight.synth.skin_look.SkinLook` it was drawn with.
    """

    tissue: SkinTissue
    times_min: np.ndarray
    depths_um: np.ndarray
    compartments: tuple[str, ...]
    curves: Mapping[str, DrugCurve]
    noise: DetectorNoise
    drug_snr: float
    shifts_yx: tuple[tuple[int, int], ...]
    noise_seeds: tuple[int, ...]
    size_yx: tuple[int, int]
    pixel_size_um: float = PIXEL_SIZE_UM
    look: str = SPEC_LOOK.name

    @property
    def n_timepoints(self) -> int:
        """Number of timepoints T."""
        return len(self.times_min)

    def _crop(self, volume: np.ndarray, index: int) -> np.ndarray:
        dy, dx = self.shifts_yx[index]
        return volume[:, dy : dy + self.size_yx[0], dx : dx + self.size_yx[1]]

    def labels(self, index: int) -> np.ndarray:
        """Compartment labels of timepoint ``index``: ``ZYX`` uint8, 0 = none."""
        lut = np.zeros(len(TISSUES), np.uint8)
        for label, name in enumerate(self.compartments, start=1):
            lut[TISSUES.index(name)] = label
        return lut[self._crop(self.tissue.tissue, index)]

    def drug_signal(self, index: int) -> np.ndarray:
        """Noise-free drug channel of timepoint ``index``: ``ZYX`` float32, ADU above offset.

        Uptake is rescaled per tissue and plane to mean 1 within the image, so the mean over a
        compartment's pixels equals :meth:`true_signal` exactly.
        """
        tissue = self._crop(self.tissue.tissue, index)
        uptake = self._crop(self.tissue.uptake, index)
        t = float(self.times_min[index])
        out = np.empty(tissue.shape, np.float32)
        for z, depth in enumerate(self.depths_um):
            counts = np.bincount(tissue[z].ravel(), minlength=len(TISSUES))
            sums = np.bincount(tissue[z].ravel(), uptake[z].ravel(), minlength=len(TISSUES))
            level = np.array([float(self.curves[name].signal(t, depth)) for name in TISSUES])
            per_unit_uptake = level * counts / np.maximum(sums, 1e-12)  # level / mean uptake
            out[z] = per_unit_uptake[tissue[z]] * uptake[z]
        return out

    def stack(self, index: int) -> np.ndarray:
        """The image of timepoint ``index``: ``ZCYX`` uint16 (C0 structure, C1 drug)."""
        rng = np.random.default_rng(self.noise_seeds[index])
        n = self.noise
        structure = camera_adu(
            rng, self._crop(self.tissue.structure, index), n.offset_adu, n.gain, n.read_noise_adu
        )
        drug = camera_adu(rng, self.drug_signal(index), n.offset_adu, n.gain, n.read_noise_adu)
        return np.stack([structure, drug], axis=1)

    def true_signal(self, time_min: ArrayLike, depth_um: ArrayLike, compartment: str) -> np.ndarray:
        """True mean drug signal (ADU above offset) of ``compartment`` (broadcast over t, d)."""
        return self.curves[compartment].signal(time_min, depth_um)

    def true_profiles(self) -> pd.DataFrame:
        """``time, depth, compartment, signal, n_px`` for every labelled compartment in every plane.

        Rows only where the compartment has pixels; ``signal`` is exact (no noise).
        """
        rows = []
        for index, t in enumerate(self.times_min):
            labels = self.labels(index)
            for z, depth in enumerate(self.depths_um):
                counts = np.bincount(labels[z].ravel(), minlength=len(self.compartments) + 1)
                for label, name in enumerate(self.compartments, start=1):
                    if counts[label]:
                        signal = float(self.true_signal(t, depth, name))
                        rows.append((float(t), float(depth), name, signal, int(counts[label])))
        return pd.DataFrame(rows, columns=["time", "depth", "compartment", "signal", "n_px"])


def check_compartments(compartments: tuple[str, ...]) -> tuple[str, ...]:
    """Return ``compartments`` if each is a known tissue, listed once; else raise ConfigError."""
    unknown = [name for name in compartments if name not in TISSUES]
    if unknown or not compartments or len(set(compartments)) != len(compartments):
        raise ConfigError(
            f"skin compartments must be distinct names from {list(TISSUES)}, "
            f"got {list(compartments)}" + (f" (unknown: {unknown})" if unknown else "")
        )
    return tuple(compartments)


def draw_times_min(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` increasing integer times from 0 to 120–240 min, irregular, denser early."""
    end = int(rng.integers(120, 241))
    if n == 1:
        return np.zeros(1)
    gaps = rng.gamma(2.0, size=n - 1) * np.linspace(0.6, 1.6, n - 1)
    times = np.rint(np.concatenate([[0.0], np.cumsum(gaps) / gaps.sum() * end]))
    times = np.maximum(times, np.arange(n))  # at least 1 min apart
    for i in range(1, n):
        times[i] = max(times[i], times[i - 1] + 1)
    return times


def draw_depths_um(rng: np.random.Generator, n: int, look: SkinLook = SPEC_LOOK) -> np.ndarray:
    """``n`` depths from the surface (0 µm) to 120–150 µm (``look.deepest_um``).

    Evenly spaced unless ``look.depth_jitter`` moves the inner planes by up to that fraction
    of a step (irregular z sampling); always increasing, the first at 0.
    """
    depths = np.linspace(0.0, rng.uniform(*look.deepest_um), n)
    jitter = draw(rng, look.depth_jitter)
    if jitter > 0 and n > 2:
        step = depths[1] - depths[0]
        depths[1:-1] += rng.uniform(-jitter, jitter, n - 2) * step
    return np.round(depths, 2)


def draw_skin_series(
    rng: np.random.Generator,
    *,
    size: int = 256,
    n_depths: int | None = None,
    n_timepoints: int | None = None,
    compartments: tuple[str, ...] = DEFAULT_COMPARTMENTS,
    drug_snr: float | None = None,
    max_shift_px: int = 2,
    look: SkinLook | str = SPEC_LOOK,
) -> SkinSeries:
    """Draw a synthetic SRS skin series from the model's ranges.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of everything; the same state gives the same series.
    size : int
        Plane size (px, square); the model covers 256–1024.
    n_depths, n_timepoints : int, optional
        Planes (model: 4–12) and timepoints (6–16); drawn from those ranges when ``None``.
    compartments : tuple of str
        Tissues to label, in label order (label 0 = any other tissue).
    drug_snr : float, optional
        Drug SNR at Cmax of the strongest compartment; log-uniform in ``look.drug_snr``
        (3–30) when ``None``.
    max_shift_px : int
        Largest stage jitter between timepoints (px).
    look : SkinLook or str
        Ranges of everything §2 leaves open (or a name in
        :data:`~overnight.synth.skin_look.LOOKS`): ``"spec"`` (default), ``"training"``
        (widened, domain randomisation) or ``"evaluation"`` (a different rendering).

    Returns
    -------
    SkinSeries
    """
    compartments = check_compartments(tuple(compartments))
    if isinstance(look, str):
        if look not in LOOKS:
            raise ConfigError(f"unknown skin look {look!r}; known: {sorted(LOOKS)}")
        look = LOOKS[look]
    fewest_z, most_z = look.n_depths
    n_z = int(rng.integers(fewest_z, most_z + 1)) if n_depths is None else n_depths
    n_t = int(rng.integers(6, 17)) if n_timepoints is None else n_timepoints
    if size < 32 or n_z < 1 or n_t < 1:
        raise ConfigError(
            f"need size >= 32, n_depths >= 1, n_timepoints >= 1; got {size}, {n_z}, {n_t}"
        )
    depths = draw_depths_um(rng, n_z, look)
    times = draw_times_min(rng, n_t)
    low_snr, high_snr = np.log(look.drug_snr[0]), np.log(look.drug_snr[1])
    snr = float(np.exp(rng.uniform(low_snr, high_snr))) if drug_snr is None else drug_snr
    noise = DetectorNoise(
        gain=float(rng.uniform(*look.gain)),
        read_noise_adu=float(rng.uniform(*look.read_noise_adu)),
        offset_adu=draw(rng, look.offset_adu),
    )
    canvas = (size + 2 * max_shift_px, size + 2 * max_shift_px)
    tissue = draw_skin_tissue(rng, canvas, depths, PIXEL_SIZE_UM, look)
    curves = draw_drug_curves(
        rng, TISSUES, peak_adu=peak_for_snr(snr, noise.gain, noise.read_noise_adu)
    )
    shifts = tuple(
        (int(dy), int(dx)) for dy, dx in rng.integers(0, 2 * max_shift_px + 1, size=(n_t, 2))
    )
    seeds = tuple(int(s) for s in rng.integers(0, 2**63 - 1, size=n_t))
    return SkinSeries(
        tissue,
        times,
        depths,
        compartments,
        curves,
        noise,
        snr,
        shifts,
        seeds,
        (size, size),
        look=look.name,
    )


def skin_image_id(time_min: float, sample: str = "skin01", user: str = "synth") -> str:
    """Name a timepoint by the lab convention, without extension.

    >>> skin_image_id(35)
    '20261125_0900_synth_srs_skin01_t-035min'
    """
    return f"{SESSION_START:%Y%m%d_%H%M}_{user}_srs_{sample}_t-{int(round(time_min)):03d}min"


def write_skin_dataset(
    out_dir: Path,
    seed: int,
    size: int = 256,
    n_depths: int | None = None,
    n_timepoints: int | None = None,
    *,
    compartments: tuple[str, ...] = DEFAULT_COMPARTMENTS,
    drug_snr: float | None = None,
    sample: str = "skin01",
    look: SkinLook | str = SPEC_LOOK,
) -> list[Path]:
    """Draw one series from ``seed`` and write its images and truth under ``out_dir``.

    The layout is in this module's docstring. The same arguments write the same bytes.

    Returns
    -------
    list of Path
        The image files, in time order.
    """
    out_dir = Path(out_dir)
    series = draw_skin_series(
        np.random.default_rng(seed),
        size=size,
        n_depths=n_depths,
        n_timepoints=n_timepoints,
        compartments=compartments,
        drug_snr=drug_snr,
        look=look,
    )
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "truth").mkdir(parents=True, exist_ok=True)
    paths = []
    for index, t in enumerate(series.times_min):
        image_id = skin_image_id(float(t), sample)
        paths.append(_write_timepoint(series, index, out_dir, image_id))
        logger.debug("wrote %s", image_id, extra={"image_id": image_id})
    (out_dir / "truth" / "curves.json").write_text(
        json.dumps(_curves_json(series), indent=2) + "\n"
    )
    series.true_profiles().to_csv(out_dir / "truth" / "profiles.csv", index=False)
    return paths


def _write_timepoint(series: SkinSeries, index: int, out_dir: Path, image_id: str) -> Path:
    image_path = out_dir / "images" / f"{image_id}.tif"
    px_per_cm = 1e4 / series.pixel_size_um
    tifffile.imwrite(
        image_path,
        series.stack(index),
        photometric="minisblack",
        resolution=(px_per_cm, px_per_cm),
        resolutionunit="CENTIMETER",
        metadata={"axes": "ZCYX", "channel_names": list(CHANNEL_NAMES)},
    )
    sidecar = {
        "time_min": float(series.times_min[index]),
        "depths_um": [float(d) for d in series.depths_um],
        "pixel_size_um": series.pixel_size_um,
        "axes": "ZCYX",
        "channel_names": list(CHANNEL_NAMES),
    }
    (out_dir / "images" / f"{image_id}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    truth_dir = out_dir / "truth" / image_id
    truth_dir.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        truth_dir / "labels.tif",
        series.labels(index),
        compression="zlib",
        photometric="minisblack",
        metadata={"axes": "ZYX"},
    )
    return image_path


def _curves_json(series: SkinSeries) -> dict[str, object]:
    return {
        "model": "C(t) = S*(exp(-ke*tau) - exp(-ka*tau)), tau = t - lag - depth/speed > 0 else 0",
        "units": "signal in ADU above offset_adu; time in min; depth in um",
        "labels": {name: label for label, name in enumerate(series.compartments, start=1)},
        "curves": {name: asdict(curve) for name, curve in series.curves.items()},
        "drug_snr": series.drug_snr,
        "look": series.look,
        "noise": asdict(series.noise),
        "times_min": [float(t) for t in series.times_min],
        "depths_um": [float(d) for d in series.depths_um],
    }
