"""How a synthetic skin series looks: the ranges its free parameters are drawn from.

IMAGING_MODEL.md §2 fixes the anatomy (layers by depth, follicles 50–100 µm, adipocytes
30–60 µm, drug SNR 3–30, …) but leaves textures, rim profiles, background structure and the
brightness relations between tissues open, and hold-out series are drawn by an independent
implementation. A :class:`SkinLook` gathers every such parameter as a ``(low, high)`` range
drawn uniformly once per series (or per plane where its description says so):

- :data:`SPEC_LOOK` — the model's own ranges with this generator's textures (the default of
  :func:`overnight.synth.skin.draw_skin_series`; it draws exactly what the generator drew
  before looks existed);
- :data:`TRAINING_LOOK` — domain randomisation: every range wider than §2 (structure
  contrast, tissue brightness, noise, background gradients and vignetting, blur, texture
  sizes and strengths, follicle size 40–120 µm and count, rim profiles, adipocyte size,
  uneven transitions, depth sampling, lobules as one ellipse or as acini); the shipped
  model is trained on it and on :data:`SPEC_LOOK`, in turn;
- :data:`EVALUATION_LOOK` — a deliberately different rendering used **only** to evaluate:
  lobules drawn as clusters of round acini instead of one ellipse, a dark follicle rim and a
  bright keratin shaft, bright adipocyte membranes, smooth per-cell texture, thick fibres,
  radial vignetting with a tilted background, blur, irregular depth spacing. Nothing is
  tuned on it.

A range with ``low == high`` is a constant and draws no random number, so that adding a
parameter never changes the series an existing seed gives with :data:`SPEC_LOOK`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

Range = tuple[float, float]


def draw(rng: np.random.Generator, bounds: Range) -> float:
    """Uniform draw from ``bounds``; a constant (``low == high``) consumes no randomness.

    >>> draw(np.random.default_rng(0), (2.0, 2.0))
    2.0
    """
    low, high = bounds
    return float(low) if low == high else float(rng.uniform(low, high))


@dataclass(frozen=True)
class SkinLook:
    """Ranges of everything IMAGING_MODEL.md §2 leaves open, or widens for training.

    Lengths in µm, brightness in units of the viable-epidermis mid-grey (``unit_adu``)
    unless the name says otherwise. Each field is ``(low, high)``, drawn per series.
    """

    name: str = "spec"
    # anatomy and geometry
    follicle_diameter_um: Range = (50.0, 100.0)
    follicle_spacing_um: float = 170.0  # one more follicle may fit per this much field side
    follicle_count: tuple[int, int] = (1, 4)
    follicle_centre: Range = (0.2, 0.8)  # centre position as a fraction of the plane
    follicle_eccentricity: Range = (0.08, 0.08)
    follicle_tilt_um_per_um: Range = (-0.15, 0.15)
    shaft_fraction: Range = (0.35, 0.35)  # shaft radius / follicle radius
    lumen_fraction: Range = (0.55, 0.55)  # outer radius of the lumen / follicle radius
    lobule_count: tuple[int, int] = (1, 3)
    lobule_size: Range = (0.35, 0.6)  # long half-axis / follicle radius
    lobule_width: Range = (0.25, 0.45)  # short half-axis / follicle radius
    lobule_top_um: Range = (25.0, 35.0)
    lobule_acini: bool = False  # True: a cluster of round acini instead of one ellipse
    lobule_acini_chance: float = 0.0  # else acini in this share of the series (0: no draw)
    adipocyte_diameter_um: Range = (30.0, 60.0)
    fat_onset_um: Range = (10.0, 10.0)  # fat starts this far below the junction
    fat_abundance: Range = (1.0, 1.0)  # density of fat cells, relative
    sc_bottom_um: Range = (15.0, 15.0)
    sc_bottom_sd_um: Range = (4.0, 4.0)
    dej_um: Range = (60.0, 60.0)
    dej_sd_um: Range = (12.0, 12.0)
    blend_um: Range = (2.0, 2.0)
    corneocyte_um: Range = (20.0, 40.0)
    keratinocyte_um: Range = (8.0, 15.0)
    fibre_um: Range = (0.6, 0.6)
    # brightness (structure channel)
    unit_adu: Range = (800.0, 1500.0)
    contrast: Range = (1.0, 1.0)  # every tissue's difference from mid-grey times this
    sc_border: Range = (1.6, 1.6)
    sc_border_um: Range = (0.8, 0.8)
    ve_nucleus: Range = (-0.35, -0.35)
    ve_border: Range = (0.35, 0.35)
    dermis_level: Range = (0.4, 0.4)
    dermis_fibre: Range = (0.5, 0.5)
    adipose_level: Range = (3.5, 3.5)
    adipose_membrane: Range = (-2.3, -2.3)
    shaft_level: Range = (0.9, 0.9)
    lumen_level: Range = (0.5, 0.5)
    sheath_level: Range = (1.25, 1.25)
    rim_level: Range = (0.6, 0.6)  # added at the rim; negative: a dark rim
    rim_position: Range = (0.93, 0.93)
    lobule_level: Range = (2.0, 2.0)
    lobule_granules: Range = (1.6, 1.6)
    cell_texture: Range = (0.0, 0.0)  # smooth multiplicative texture within tissues (sd)
    attenuation_um: Range = (400.0, 400.0)
    # background and optics
    illumination_sd: Range = (0.07, 0.07)
    gradient: Range = (0.0, 0.0)  # linear brightness tilt across the plane (fraction)
    vignetting: Range = (0.0, 0.0)  # fall-off at the corners (fraction)
    haze: Range = (0.0, 0.0)  # smooth additive background (units)
    blur_px: Range = (0.0, 0.0)  # Gaussian PSF σ of the structure channel
    # detector and drug
    gain: Range = (0.5, 2.0)
    read_noise_adu: Range = (3.0, 8.0)
    offset_adu: Range = (100.0, 100.0)
    drug_snr: Range = (3.0, 30.0)
    uptake_contrast: Range = (1.3, 1.3)  # drug between cells vs inside
    # depth sampling
    n_depths: tuple[int, int] = (4, 12)
    deepest_um: Range = (120.0, 150.0)
    depth_jitter: Range = (0.0, 0.0)  # irregular spacing: fraction of a step

    def with_ranges(self, **changes: object) -> SkinLook:
        """A copy with some fields replaced (e.g. one parameter of a robustness sweep)."""
        return replace(self, **changes)  # type: ignore[arg-type]


#: IMAGING_MODEL.md §2 with this generator's own rendering (the historical default).
SPEC_LOOK = SkinLook()

#: Domain randomisation for training: every range of §2 widened, rim profiles of both signs.
TRAINING_LOOK = SkinLook(
    name="training",
    follicle_diameter_um=(40.0, 120.0),
    follicle_spacing_um=110.0,
    follicle_count=(1, 5),
    follicle_centre=(0.08, 0.92),
    follicle_eccentricity=(0.0, 0.25),
    follicle_tilt_um_per_um=(-0.3, 0.3),
    shaft_fraction=(0.15, 0.45),
    lumen_fraction=(0.5, 0.75),
    lobule_count=(0, 4),
    lobule_size=(0.25, 0.8),
    lobule_width=(0.2, 0.6),
    lobule_top_um=(15.0, 40.0),
    lobule_acini_chance=0.5,  # both lobule mechanisms: one ellipse or a cluster of acini
    adipocyte_diameter_um=(24.0, 72.0),
    fat_onset_um=(0.0, 30.0),
    fat_abundance=(0.4, 2.5),
    sc_bottom_um=(10.0, 20.0),
    sc_bottom_sd_um=(2.0, 8.0),
    dej_um=(50.0, 70.0),
    dej_sd_um=(5.0, 20.0),
    blend_um=(1.0, 5.0),
    corneocyte_um=(16.0, 48.0),
    keratinocyte_um=(6.0, 18.0),
    fibre_um=(0.4, 1.2),
    unit_adu=(150.0, 3000.0),
    contrast=(0.5, 1.5),
    sc_border=(0.6, 2.4),
    sc_border_um=(0.5, 1.5),
    ve_nucleus=(-0.55, -0.05),
    ve_border=(0.0, 0.6),
    dermis_level=(0.25, 0.65),
    dermis_fibre=(0.25, 0.75),
    adipose_level=(2.0, 4.5),
    adipose_membrane=(-2.5, 0.8),
    shaft_level=(0.2, 1.8),
    lumen_level=(0.1, 1.4),
    sheath_level=(0.7, 1.9),
    rim_level=(-0.8, 1.2),
    rim_position=(0.8, 0.98),
    lobule_level=(1.2, 3.0),
    lobule_granules=(0.3, 2.0),
    cell_texture=(0.0, 0.2),
    attenuation_um=(150.0, 1000.0),
    illumination_sd=(0.0, 0.2),
    gradient=(0.0, 0.35),
    vignetting=(0.0, 0.45),
    haze=(0.0, 0.25),
    blur_px=(0.0, 1.5),
    gain=(0.3, 3.0),
    read_noise_adu=(2.0, 12.0),
    offset_adu=(50.0, 200.0),
    drug_snr=(2.0, 40.0),
    uptake_contrast=(0.5, 2.5),
    n_depths=(3, 14),
    deepest_um=(90.0, 180.0),
    depth_jitter=(0.0, 0.4),
)

#: A deliberately different rendering, inside §2's ranges, for evaluation only.
EVALUATION_LOOK = SkinLook(
    name="evaluation",
    follicle_eccentricity=(0.12, 0.2),
    follicle_centre=(0.12, 0.88),
    shaft_fraction=(0.25, 0.3),
    lumen_fraction=(0.6, 0.65),
    lobule_acini=True,
    lobule_size=(0.5, 0.7),
    sc_bottom_sd_um=(6.0, 6.0),
    dej_sd_um=(16.0, 16.0),
    blend_um=(3.5, 3.5),
    fibre_um=(1.0, 1.0),
    unit_adu=(400.0, 900.0),
    contrast=(0.75, 0.85),
    sc_border=(0.9, 0.9),
    sc_border_um=(1.2, 1.2),
    ve_nucleus=(-0.2, -0.2),
    ve_border=(0.5, 0.5),
    dermis_level=(0.55, 0.55),
    dermis_fibre=(0.35, 0.35),
    fat_onset_um=(5.0, 5.0),
    fat_abundance=(1.6, 1.6),
    adipose_level=(3.0, 3.0),
    adipose_membrane=(0.6, 0.6),
    shaft_level=(1.6, 1.6),
    lumen_level=(0.2, 0.2),
    sheath_level=(1.1, 1.1),
    rim_level=(-0.5, -0.5),
    rim_position=(0.88, 0.88),
    lobule_level=(2.4, 2.4),
    lobule_granules=(0.8, 0.8),
    cell_texture=(0.12, 0.12),
    attenuation_um=(250.0, 250.0),
    illumination_sd=(0.05, 0.05),
    gradient=(0.15, 0.15),
    vignetting=(0.25, 0.25),
    haze=(0.1, 0.1),
    blur_px=(0.8, 0.8),
    depth_jitter=(0.25, 0.25),
    uptake_contrast=(2.0, 2.0),
)

LOOKS: dict[str, SkinLook] = {
    look.name: look for look in (SPEC_LOOK, TRAINING_LOOK, EVALUATION_LOOK)
}
