"""The parameter ranges of the digital-cytometry imaging model (IMAGING_MODEL.md §1).

:class:`CytometryRanges` documents every range a synthetic field is drawn from; its defaults
are the imaging model. :class:`FieldParams` holds the values drawn for one field and is saved
beside the ground truth as ``params.json`` so accuracy can be broken down by them.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

FloatRange = tuple[float, float]
IntRange = tuple[int, int]


class CellTypeSpec(BaseModel):
    """One cell type: size, shape and how common it is."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Type name, as written in cells.csv's cell_type.")
    diameter_px: FloatRange = Field(description="Equivalent diameter (px) range.")
    max_aspect: float = Field(default=1.0, ge=1.0, description="Largest long/short axis ratio.")
    irregularity: float = Field(
        default=0.0,
        ge=0.0,
        le=0.2,
        description="Relative size of the outline's lobes (0 = smooth).",
    )
    fraction: float = Field(gt=0.0, description="Relative frequency among the types drawn.")


LYMPHOCYTE = CellTypeSpec(
    name="lymphocyte", diameter_px=(30.0, 45.0), max_aspect=1.05, irregularity=0.01, fraction=0.6
)
MONOCYTE = CellTypeSpec(
    name="monocyte", diameter_px=(55.0, 75.0), max_aspect=1.3, irregularity=0.06, fraction=0.4
)


class CytometryRanges(BaseModel):
    """Every range a synthetic digital-cytometry field is drawn from (defaults = the spec).

    Pairs are inclusive ``(low, high)`` ranges drawn uniformly once per field unless the
    description says otherwise. Units: px = pixels, slices = z planes, ADU = camera units.
    """

    model_config = ConfigDict(frozen=True)

    # geometry
    pixel_size_um: float = Field(default=0.2, gt=0, description="Pixel size (µm).")
    z_step_um: float = Field(default=0.5, gt=0, description="Distance between slices (µm).")
    n_z: IntRange = Field(default=(5, 12), description="Slices per field.")
    min_size_px: int = Field(default=128, description="Smallest field side accepted (px).")
    # cells
    cell_types: tuple[CellTypeSpec, ...] = Field(default=(LYMPHOCYTE, MONOCYTE))
    cells_per_512: IntRange = Field(
        default=(8, 30), description="Cells per 512² px field; scaled with area for other sizes."
    )
    touching_fraction: FloatRange = Field(
        default=(0.25, 0.42), description="Fraction of cells sharing a boundary with a neighbour."
    )
    border_cell_fraction: FloatRange = Field(
        default=(0.0, 1.0),
        description="Chance that a cell not touching another may be cut by the field's edge "
        "(1 = the field is a random window on the slide).",
    )
    cell_gap_px: float = Field(
        default=3.0, description="Smallest gap between cells that do not touch (px)."
    )
    focus_spread_slices: float = Field(
        default=0.6,
        description="Standard deviation of cells' focal planes around the field's (slices).",
    )
    cell_height_ratio: FloatRange = Field(
        default=(0.5, 0.8), description="Cell half-height / cell radius (a flattened spheroid)."
    )
    # cell channel
    cell_signal_adu: FloatRange = Field(
        default=(10.0, 400.0),
        description="Mean body signal (ADU above the offset), drawn log-uniformly: dim fields are "
        "as common as bright ones; at 10 ADU a body's per-pixel SNR is about 1.",
    )
    cell_brightness_log_sigma: float = Field(
        default=0.2, description="Log-normal σ of each cell's brightness around the field's."
    )
    rim_contrast: FloatRange = Field(
        default=(1.5, 2.5), description="Rim peak / mean body signal (before blur)."
    )
    rim_width_px: FloatRange = Field(default=(0.6, 1.0), description="Gaussian σ of the rim (px).")
    rim_inset_px: float = Field(
        default=1.5, description="Rim peak's distance inside the mask edge (px)."
    )
    texture_strength: FloatRange = Field(
        default=(0.08, 0.25), description="Relative standard deviation of the body texture."
    )
    texture_scale_px: FloatRange = Field(default=(1.5, 4.0), description="Texture grain (px).")
    focus_blur_px: FloatRange = Field(default=(0.6, 0.9), description="Blur σ in focus (px).")
    defocus_blur_px_per_slice: FloatRange = Field(
        default=(0.8, 2.0),
        description="Blur σ growth per slice away from a cell's focal plane (px).",
    )
    # particles
    sigma_xy_px: FloatRange = Field(default=(1.0, 1.5), description="PNP spot σ in x and y (px).")
    sigma_z_slices: FloatRange = Field(default=(1.0, 1.5), description="PNP spot σ in z (slices).")
    amplitude_log_sigma: float = Field(
        default=0.25, description="Log-normal σ of each particle's amplitude around the field's A."
    )
    autoscatter_fraction: FloatRange = Field(
        default=(0.0, 0.1),
        description="Brightest cell autoscatter in the pnp channel, as a fraction of A.",
    )
    pnp_lambda_median: float = Field(
        default=18.0, description="Median of the per-cell Poisson mean."
    )
    pnp_lambda_log_sigma: float = Field(
        default=0.6, description="Log-normal σ of the per-cell mean."
    )
    pnp_lambda_max: float = Field(
        default=80.0, description="Per-cell Poisson means are clipped here."
    )
    near_zero_fraction: float = Field(
        default=0.15, description="Fraction of cells whose Poisson mean is near zero (uniform 0–1)."
    )
    close_pair_fraction: float = Field(
        default=0.08, description="Fraction of a cell's particles placed within one σ of another."
    )
    glass_pnps_per_512: IntRange = Field(
        default=(5, 20), description="Particles on glass (cell_id 0) per 512² px field."
    )
    glass_min_distance_px: float = Field(
        default=6.0, description="Smallest distance from glass particles to cells (px)."
    )
    # camera
    offset_adu: FloatRange = Field(default=(95.0, 105.0), description="Background offset (ADU).")
    gain: FloatRange = Field(default=(0.5, 2.0), description="ADU per photo-electron.")
    read_noise_adu: FloatRange = Field(
        default=(3.0, 8.0), description="Gaussian read noise σ (ADU)."
    )
    snr: FloatRange = Field(
        default=(4.0, 20.0), description="Single-particle SNR: A / read-noise σ."
    )
    # what the imaging model leaves open (overnight.synth.look): drawn broadly
    look_family: Literal["standard", "alternate"] = Field(
        default="standard",
        description="Mechanisms for background, illumination, texture, rim and PSF shape; "
        "'alternate' is kept for evaluation only (see overnight.synth.look).",
    )
    background_adu: FloatRange = Field(
        default=(0.0, 20.0), description="Peak-to-peak background structure in channel 0 (ADU)."
    )
    vignetting: FloatRange = Field(
        default=(0.0, 0.2), description="Relative illumination falloff at the field's corners."
    )
    haze_fraction: FloatRange = Field(
        default=(0.0, 0.2),
        description="Out-of-focus haze: blurred cells added, as a fraction of their signal.",
    )
    debris_per_512: IntRange = Field(
        default=(0, 4), description="Small bright specks in channel 0 per 512² px field."
    )
    psf_anisotropy: FloatRange = Field(
        default=(1.0, 1.1), description="Spot σ_y / σ_x (the spot's ellipticity)."
    )
    psf_halo: FloatRange = Field(
        default=(0.0, 0.1), description="Share of a spot's profile in a halo 2.5× wider."
    )

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> Self:
        for name, value in self:
            if isinstance(value, tuple) and len(value) == 2 and not isinstance(value[0], BaseModel):
                if value[0] > value[1]:
                    raise ValueError(f"{name}: low {value[0]} is above high {value[1]}")
        if not self.cell_types:
            raise ValueError("cell_types: at least one cell type is needed")
        return self

    def cell_type(self, name: str) -> CellTypeSpec:
        """Return the spec of the type called ``name``; KeyError naming the known types."""
        for spec in self.cell_types:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.cell_types)
        raise KeyError(f"unknown cell type {name!r}; known types: {known}")


class FieldParams(BaseModel):
    """The values drawn for one synthetic field (saved as ``params.json``)."""

    model_config = ConfigDict(frozen=True)

    height_px: int
    width_px: int
    n_z: int
    pixel_size_um: float
    z_step_um: float
    cell_types: tuple[str, ...]
    n_cells_drawn: int = Field(
        description="Cells asked for; fewer are placed when the field is full."
    )
    touching_fraction: float
    border_cell_fraction: float
    focus_z: float = Field(description="The field's focal plane (slice, float).")
    glass_z: float = Field(description="The glass plane (slice, float).")
    cell_signal_adu: float
    rim_contrast: float
    rim_width_px: float
    texture_strength: float
    texture_scale_px: float
    focus_blur_px: float
    defocus_blur_px_per_slice: float
    sigma_xy_px: float
    sigma_z_slices: float
    amplitude_adu: float = Field(description="A: the field's median particle amplitude (ADU).")
    autoscatter_fraction: float
    n_glass_pnps: int
    offset_adu: float
    gain: float
    read_noise_adu: float
    snr: float = Field(description="A / read_noise_adu.")
    look_family: Literal["standard", "alternate"] = "standard"
    background_adu: float = 0.0
    vignetting: float = 0.0
    haze_fraction: float = 0.0
    n_debris: int = 0
    psf_anisotropy: float = 1.0
    psf_halo: float = 0.0


TRAINING_RANGES = CytometryRanges(
    cell_types=(
        LYMPHOCYTE.model_copy(update={"diameter_px": (28.0, 47.0), "max_aspect": 1.1}),
        MONOCYTE.model_copy(update={"diameter_px": (53.0, 78.0), "max_aspect": 1.4}),
    ),
    cells_per_512=(4, 36),
    touching_fraction=(0.2, 0.5),
    focus_spread_slices=0.8,
    cell_signal_adu=(5.0, 600.0),
    cell_brightness_log_sigma=0.3,
    rim_contrast=(1.2, 3.0),
    rim_width_px=(0.5, 1.4),
    texture_strength=(0.04, 0.35),
    texture_scale_px=(1.0, 6.0),
    focus_blur_px=(0.5, 1.2),
    defocus_blur_px_per_slice=(0.6, 2.5),
    sigma_xy_px=(0.8, 1.8),
    sigma_z_slices=(0.8, 1.8),
    amplitude_log_sigma=0.3,
    autoscatter_fraction=(0.0, 0.15),
    glass_pnps_per_512=(3, 25),
    offset_adu=(50.0, 300.0),
    gain=(0.3, 3.0),
    read_noise_adu=(2.0, 10.0),
    snr=(3.0, 25.0),
    background_adu=(0.0, 60.0),
    vignetting=(0.0, 0.35),
    haze_fraction=(0.0, 0.5),
    debris_per_512=(0, 10),
    psf_anisotropy=(1.0, 1.2),
    psf_halo=(0.0, 0.2),
)
"""Training ranges: every range of the imaging model widened (domain randomisation), so that
a model meets fields near the spec's edges inside what it learned."""

EVALUATION_RANGES = CytometryRanges(
    look_family="alternate",
    background_adu=(0.0, 40.0),
    vignetting=(0.0, 0.3),
    haze_fraction=(0.0, 0.3),
)
"""The spec's ranges drawn with the *alternate* look family: kept for evaluation only, never
for training or tuning (a stand-in for an independent implementation of the imaging model)."""
