"""The synthetic skin itself: en-face CH₂ (lipid) structure, tissue classes and drug uptake.

One :class:`SkinTissue` is one piece of skin imaged at several depths (IMAGING_MODEL.md §2).
Everything that is the same at every timepoint lives here; :mod:`overnight.synth.skin` adds
drug and noise per timepoint.

How a plane at depth d is drawn:

- two smooth boundary surfaces, shared by all depths, give the local depth of the
  stratum corneum / viable epidermis boundary (15 ± ~4 µm) and of the dermal–epidermal
  junction (60 ± ~12 µm, papillae). Layers blend over ~2 µm of depth around them, so
  transitions are gradual and uneven and one plane can hold several layers;
- stratum corneum: Voronoi corneocytes 20–40 µm with bright lipid borders; viable epidermis:
  Voronoi honeycomb of 8–15 µm cells with dark nuclei; dermis: collagen fibres (noise smoothed
  along locally varying directions), darker;
- adipocytes (30–60 µm, very bright) in the dermis, denser the deeper below the junction;
- 1–4 hair follicles (50–100 µm rings, slightly tilted) cross every plane; below ~30 µm each
  has 1–3 bright granular sebaceous lobules beside it, growing then shrinking with depth.

``uptake`` is where a drug collects within a tissue: high between cells (lipid borders,
interstitium, follicle lumen, sebum granules), low inside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage

from overnight.synth.skin_look import SPEC_LOOK, SkinLook, draw

#: Tissue classes, in the order of :attr:`SkinTissue.tissue` values.
TISSUES: tuple[str, ...] = (
    "stratum_corneum",
    "viable_epidermis",
    "hair_follicle",
    "dermis",
    "adipose",
)
SC, VE, HF, DE, AD = range(5)


@dataclass(frozen=True)
class SkinTissue:
    """Noise-free structure of one skin region at several depths (canvas of ``Y × X`` px).

    Attributes
    ----------
    structure : ndarray of float32, shape (Z, Y, X)
        CH₂ (2850 cm⁻¹) signal in ADU above the detector offset.
    tissue : ndarray of uint8, shape (Z, Y, X)
        Tissue class per pixel: an index into :data:`TISSUES`.
    uptake : ndarray of float32, shape (Z, Y, X)
        Relative drug uptake (> 0); normalised per tissue and plane by the caller.
    """

    structure: np.ndarray
    tissue: np.ndarray
    uptake: np.ndarray


@dataclass(frozen=True)
class _Render:
    """The per-series draw of a :class:`SkinLook`'s rendering ranges (one value each)."""

    blend_um: float
    eccentricity: float
    shaft: float
    lumen: float
    acini: bool
    corneocyte_um: tuple[float, float]
    keratinocyte_um: tuple[float, float]
    fibre_um: float
    adipocyte_radius_um: tuple[float, float]
    fat_onset_um: float
    fat_abundance: float
    contrast: float
    sc_border: float
    sc_border_um: float
    ve_nucleus: float
    ve_border: float
    dermis_level: float
    dermis_fibre: float
    adipose_level: float
    adipose_membrane: float
    shaft_level: float
    lumen_level: float
    sheath_level: float
    rim_level: float
    rim_position: float
    lobule_level: float
    lobule_granules: float
    cell_texture: float
    attenuation_um: float
    uptake_contrast: float

    @classmethod
    def of(cls, rng: np.random.Generator, look: SkinLook) -> _Render:
        """Draw one value of every range (constants draw nothing)."""
        return cls(
            blend_um=draw(rng, look.blend_um),
            eccentricity=draw(rng, look.follicle_eccentricity),
            shaft=draw(rng, look.shaft_fraction),
            lumen=draw(rng, look.lumen_fraction),
            acini=look.lobule_acini
            or (look.lobule_acini_chance > 0 and rng.random() < look.lobule_acini_chance),
            corneocyte_um=look.corneocyte_um,
            keratinocyte_um=look.keratinocyte_um,
            fibre_um=draw(rng, look.fibre_um),
            adipocyte_radius_um=(
                look.adipocyte_diameter_um[0] / 2,
                look.adipocyte_diameter_um[1] / 2,
            ),
            fat_onset_um=draw(rng, look.fat_onset_um),
            fat_abundance=draw(rng, look.fat_abundance),
            contrast=draw(rng, look.contrast),
            sc_border=draw(rng, look.sc_border),
            sc_border_um=draw(rng, look.sc_border_um),
            ve_nucleus=draw(rng, look.ve_nucleus),
            ve_border=draw(rng, look.ve_border),
            dermis_level=draw(rng, look.dermis_level),
            dermis_fibre=draw(rng, look.dermis_fibre),
            adipose_level=draw(rng, look.adipose_level),
            adipose_membrane=draw(rng, look.adipose_membrane),
            shaft_level=draw(rng, look.shaft_level),
            lumen_level=draw(rng, look.lumen_level),
            sheath_level=draw(rng, look.sheath_level),
            rim_level=draw(rng, look.rim_level),
            rim_position=draw(rng, look.rim_position),
            lobule_level=draw(rng, look.lobule_level),
            lobule_granules=draw(rng, look.lobule_granules),
            cell_texture=draw(rng, look.cell_texture),
            attenuation_um=draw(rng, look.attenuation_um),
            uptake_contrast=draw(rng, look.uptake_contrast),
        )


@dataclass(frozen=True)
class _Follicle:
    y_px: float
    x_px: float
    radius_px: float
    tilt_yx: tuple[float, float]  # px of lateral drift per µm of depth
    lobules: tuple[tuple[float, float, float, float, float], ...]  # angle, a_px, b_px, top, bottom


def filtered_noise(
    rng: np.random.Generator,
    shape: tuple[int, int],
    sigmas_px: tuple[float, float],
    angles_rad: tuple[float, ...] = (0.0,),
) -> list[np.ndarray]:
    """White noise smoothed by Gaussians (σ along, σ across) at each angle; one field per angle.

    Filtering is done in Fourier space (periodic edges), so the cost does not grow with σ.
    Each field is zero-mean with unit variance.
    """
    padded = (sp_fft.next_fast_len(shape[0], True), sp_fft.next_fast_len(shape[1], True))
    spectrum = sp_fft.rfft2(rng.standard_normal(padded, dtype=np.float32))
    ky = sp_fft.fftfreq(padded[0])[:, None] * 2 * math.pi
    kx = sp_fft.rfftfreq(padded[1])[None, :] * 2 * math.pi
    fields = []
    for angle in angles_rad:
        k_along = kx * math.cos(angle) + ky * math.sin(angle)
        k_across = -kx * math.sin(angle) + ky * math.cos(angle)
        gain = np.exp(-0.5 * ((sigmas_px[0] * k_along) ** 2 + (sigmas_px[1] * k_across) ** 2))
        field = sp_fft.irfft2(spectrum * gain.astype(np.float32), s=padded)[: shape[0], : shape[1]]
        fields.append(((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32))
    return fields


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], corr_px: float) -> np.ndarray:
    """Zero-mean, unit-variance random field with features about ``corr_px`` across (Y, X)."""
    return filtered_noise(rng, shape, (corr_px / 2, corr_px / 2))[0]


def voronoi_cells(
    rng: np.random.Generator, shape: tuple[int, int], spacing_px: float, border_px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Polygonal cells around jittered hexagonal seeds.

    Returns
    -------
    cell_id : ndarray of int, shape (Y, X)
        Index of the nearest seed.
    centre_dist : ndarray of float32
        Distance to that seed in units of ``spacing_px / 2`` (≈ 1 at the border).
    border : ndarray of float32 in [0, 1]
        1 on the boundary between cells, falling off over ``border_px``.
    """
    row_step = spacing_px * math.sqrt(3) / 2
    ys = np.arange(-spacing_px, shape[0] + spacing_px, row_step)
    seeds = []
    for i, y in enumerate(ys):
        xs = np.arange(-spacing_px, shape[1] + spacing_px, spacing_px) + (i % 2) * spacing_px / 2
        seeds.append(np.stack([np.full_like(xs, y), xs], axis=1))
    points = np.concatenate(seeds) + rng.uniform(-0.3, 0.3, (sum(map(len, seeds)), 2)) * spacing_px
    seed_image = np.zeros(shape, dtype=np.int32)
    inside = np.all((points >= 0) & (points < np.array(shape)), axis=1)
    rounded = points[inside].astype(int)
    seed_image[rounded[:, 0], rounded[:, 1]] = np.arange(1, len(rounded) + 1)
    dist, (iy, ix) = ndimage.distance_transform_edt(seed_image == 0, return_indices=True)
    cell_id = seed_image[iy, ix]
    edge = np.zeros(shape, dtype=bool)
    edge[:-1] |= cell_id[:-1] != cell_id[1:]
    edge[:, :-1] |= cell_id[:, :-1] != cell_id[:, 1:]
    border = np.exp(-((ndimage.distance_transform_edt(~edge) / border_px) ** 2))
    return cell_id, (dist / (spacing_px / 2)).astype(np.float32), border.astype(np.float32)


def _fibres(rng: np.random.Generator, shape: tuple[int, int], fibre_px: float) -> np.ndarray:
    """Collagen-like fibres in [0, 1]: noise smoothed along 4 directions, mixed, then bent."""
    angles = tuple(k * math.pi / 4 for k in range(4))
    strokes = filtered_noise(rng, shape, (20 * fibre_px, fibre_px), angles)
    angle_field = smooth_field(rng, shape, corr_px=60 * fibre_px) * 0.9
    mixed = np.zeros(shape, np.float32)
    weights = np.zeros(shape, np.float32)
    for angle, stroke in zip(angles, strokes, strict=True):
        weight = np.clip(np.cos(2 * (angle_field - angle)), 0, None) ** 2 + 0.05
        mixed += weight * stroke
        weights += weight
    # wavy bundles: bend the straight strokes with a slow displacement field
    yy, xx = np.indices(shape, dtype=np.float32)
    bend = 4 * fibre_px
    yy += bend * smooth_field(rng, shape, 40 * fibre_px)
    xx += bend * smooth_field(rng, shape, 40 * fibre_px)
    wavy = ndimage.map_coordinates(mixed / weights, [yy, xx], order=1, mode="reflect")
    ridges = np.clip(wavy, 0, None)
    return (1.0 - np.exp(-1.5 * ridges)).astype(np.float32)


def _draw_follicles(
    rng: np.random.Generator, shape: tuple[int, int], px_um: float, look: SkinLook = SPEC_LOOK
) -> list[_Follicle]:
    field_um = min(shape) * px_um
    fewest, most = look.follicle_count
    n_max = int(np.clip(1 + field_um // look.follicle_spacing_um, max(fewest, 1), most))
    n_follicles = int(rng.integers(fewest, n_max + 1))
    follicles: list[_Follicle] = []
    smallest_r_um, largest_r_um = (d / 2 for d in look.follicle_diameter_um)
    for _ in range(50 * n_max):
        if len(follicles) == n_follicles:
            break
        # a 256² field (128 µm) keeps some skin around its follicles
        largest_um = min(largest_r_um, 0.35 * field_um)
        radius_um = rng.uniform(min(smallest_r_um, largest_um / 2), largest_um)
        radius = radius_um / px_um
        y, x = rng.uniform(*look.follicle_centre, 2) * np.array(shape)
        if any(
            math.hypot(y - f.y_px, x - f.x_px) < 1.6 * (radius + f.radius_px) for f in follicles
        ):
            continue
        lobules = tuple(
            (
                float(rng.uniform(0, 2 * math.pi)),
                float(rng.uniform(*look.lobule_size) * radius),
                float(rng.uniform(*look.lobule_width) * radius),
                float(rng.uniform(*look.lobule_top_um)),
                float(rng.uniform(110.0, 170.0)),
            )
            for _ in range(rng.integers(look.lobule_count[0], look.lobule_count[1] + 1))
        )
        tilt = tuple(float(v) for v in rng.uniform(*look.follicle_tilt_um_per_um, 2) / px_um)
        follicles.append(_Follicle(float(y), float(x), radius, (tilt[0], tilt[1]), lobules))
    return follicles


def _follicle_plane(
    follicles: list[_Follicle],
    depth_um: float,
    shape: tuple[int, int],
    wobble: np.ndarray,
    outline: np.ndarray,
    granules: np.ndarray,
    unit: float,
    render: _Render,
    acini: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Truth mask, drawn mask, structure and uptake of all follicles and lobules at one depth.

    The truth mask is the whole cross-section (rim, sheath, lumen and shaft) plus the
    lobules, with any pocket they enclose (IMAGING_MODEL.md §2); the drawn mask is where the
    follicle's own structure replaces the surrounding tissue's.
    """
    r = render
    yy, xx = np.indices(shape, dtype=np.float32)
    mask = np.zeros(shape, bool)
    structure = np.zeros(shape, np.float32)
    uptake = np.zeros(shape, np.float32)
    for f in follicles:
        cy, cx = f.y_px + f.tilt_yx[0] * depth_um, f.x_px + f.tilt_yx[1] * depth_um
        dy, dx = yy - cy, xx - cx
        theta = np.arctan2(dy, dx)
        shape_factor = 1 + r.eccentricity * np.sin(2 * theta) + 0.04 * outline
        rho = np.hypot(dy, dx) / (f.radius_px * shape_factor)
        ring = rho < 1.0
        shaft, lumen = rho < r.shaft, (rho >= r.shaft) & (rho < r.lumen)
        sheath = ring & ~shaft & ~lumen
        rim = np.exp(-(((rho - r.rim_position) / 0.06) ** 2))
        structure[shaft] = r.shaft_level * unit * (1 + 0.1 * wobble[shaft])
        structure[lumen] = r.lumen_level * unit
        structure[sheath] = unit * (r.sheath_level + r.rim_level * rim[sheath])
        uptake[shaft], uptake[lumen], uptake[sheath] = 0.15, 1.0, 0.35 + 0.3 * rim[sheath]
        mask |= ring
        for angle, a, b, top, bottom in f.lobules:
            if not top < depth_um < bottom:
                continue
            size = math.sqrt(1 - ((depth_um - (top + bottom) / 2) / ((bottom - top) / 2)) ** 2)
            ly = cy + math.sin(angle) * (f.radius_px + 0.8 * b * size)
            lx = cx + math.cos(angle) * (f.radius_px + 0.8 * b * size)
            u = ((yy - ly) * math.sin(angle) + (xx - lx) * math.cos(angle)) / (b * size + 1e-6)
            v = (-(yy - ly) * math.cos(angle) + (xx - lx) * math.sin(angle)) / (a * size + 1e-6)
            lobe = (u**2 + v**2 < 1 + 0.3 * wobble) & ~ring
            if acini is not None:  # a cluster of round acini rather than one smooth ellipse
                lobe &= acini > -0.35
            structure[lobe] = unit * (r.lobule_level + r.lobule_granules * granules[lobe])
            uptake[lobe] = 0.5 + 0.8 * granules[lobe]
            mask |= lobe
    return ndimage.binary_fill_holes(mask), mask, structure, uptake


def _adipocytes(
    rng: np.random.Generator,
    below_dej_um: np.ndarray,
    propensity: np.ndarray,
    px_um: float,
    radius_um: tuple[float, float] = (15.0, 30.0),
    onset_um: float = 10.0,
    abundance: float = 1.0,
) -> np.ndarray:
    """Distance-to-centre map (in radii; inf outside) of non-overlapping fat cells at one depth.

    Fat appears ``onset_um`` below the dermal–epidermal junction and grows denser over 70 µm;
    ``abundance`` scales that density (the chance that a proposed cell is kept, capped at 1).
    """
    shape = below_dej_um.shape
    density = np.clip((below_dej_um - onset_um) / 70.0, 0, 1) * (0.5 + 0.5 * np.tanh(propensity))
    if abundance != 1.0:
        density = np.clip(density * abundance, 0, 1)
    rel = np.full(shape, np.inf, np.float32)
    if density.max() <= 0.02:
        return rel
    mean_r = (radius_um[0] + radius_um[1]) / 2 / px_um
    placed: list[tuple[float, float, float]] = []
    for _ in range(int(4 * max(abundance, 1.0) * shape[0] * shape[1] / (math.pi * mean_r**2))):
        y, x = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        if rng.random() > density[int(y), int(x)]:
            continue
        r = rng.uniform(*radius_um) / px_um
        if any(math.hypot(y - py, x - px) < r + pr + 1.0 / px_um for py, px, pr in placed):
            continue
        placed.append((y, x, r))
        y0, y1 = max(0, int(y - r) - 1), min(shape[0], int(y + r) + 2)
        x0, x1 = max(0, int(x - r) - 1), min(shape[1], int(x + r) + 2)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        rel[y0:y1, x0:x1] = np.minimum(rel[y0:y1, x0:x1], np.hypot(yy - y, xx - x) / r)
    return rel


def draw_skin_tissue(
    rng: np.random.Generator,
    shape_yx: tuple[int, int],
    depths_um: np.ndarray,
    pixel_size_um: float = 0.5,
    look: SkinLook = SPEC_LOOK,
) -> SkinTissue:
    """Draw one skin region imaged at ``depths_um``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the tissue.
    shape_yx : (int, int)
        Plane size in pixels.
    depths_um : ndarray of shape (Z,)
        Depth of each plane below the skin surface (µm).
    pixel_size_um : float
        Pixel size (µm).
    look : SkinLook
        Ranges of the rendering (textures, brightness, background); :data:`SPEC_LOOK` by default.

    Returns
    -------
    SkinTissue
    """
    px = pixel_size_um
    sc_bottom = draw(rng, look.sc_bottom_um) + draw(rng, look.sc_bottom_sd_um) * smooth_field(
        rng, shape_yx, 80 / px
    )
    dej = draw(rng, look.dej_um) + draw(rng, look.dej_sd_um) * smooth_field(rng, shape_yx, 25 / px)
    fat_propensity = 1.5 * smooth_field(rng, shape_yx, 80 / px) + 0.5
    illumination = 1.0 + draw(rng, look.illumination_sd) * smooth_field(rng, shape_yx, 100 / px)
    follicles = _draw_follicles(rng, shape_yx, px, look)
    unit = rng.uniform(*look.unit_adu)  # mid-grey (viable epidermis) in ADU
    render = _Render.of(rng, look)
    planes = [
        _draw_plane(rng, float(d), sc_bottom, dej, fat_propensity, follicles, unit, px, render)
        for d in depths_um
    ]
    background = _background(rng, shape_yx, look, px)
    structure = np.stack([p[0] * illumination for p in planes]).astype(np.float32)
    if background is not None:
        gain, haze = background
        structure = structure * gain + unit * haze
    blur_px = draw(rng, look.blur_px)
    if blur_px > 0:
        structure = ndimage.gaussian_filter(structure, (0, blur_px, blur_px))
    structure = np.clip(structure, 0, None).astype(np.float32)
    return SkinTissue(
        structure=structure,
        tissue=np.stack([p[1] for p in planes]).astype(np.uint8),
        uptake=np.stack([p[2] for p in planes]).astype(np.float32),
    )


def _background(
    rng: np.random.Generator, shape: tuple[int, int], look: SkinLook, px: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Multiplicative gain (tilt × vignetting) and additive haze (units), or None if flat."""
    tilt, vignetting, haze = (draw(rng, r) for r in (look.gradient, look.vignetting, look.haze))
    if tilt == 0 and vignetting == 0 and haze == 0:
        return None
    iy, ix = np.indices(shape, dtype=np.float32)
    yy, xx = iy / shape[0] - 0.5, ix / shape[1] - 0.5
    angle = rng.uniform(0, 2 * math.pi) if tilt else 0.0
    gain = 1 + tilt * 2 * (yy * math.sin(angle) + xx * math.cos(angle))
    if vignetting:
        cy, cx = rng.uniform(-0.15, 0.15, 2)  # the optical axis is rarely centred
        gain = gain * (1 - vignetting * ((yy - cy) ** 2 + (xx - cx) ** 2) / 0.5)
    fog = haze * (0.5 + 0.5 * smooth_field(rng, shape, 60 / px)) if haze else np.zeros(shape)
    return gain.astype(np.float32), np.clip(fog, 0, None).astype(np.float32)


def _draw_plane(
    rng: np.random.Generator,
    depth_um: float,
    sc_bottom: np.ndarray,
    dej: np.ndarray,
    fat_propensity: np.ndarray,
    follicles: list[_Follicle],
    unit: float,
    px: float,
    render: _Render,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Structure, tissue class and uptake of one plane (all (Y, X))."""
    r = render
    shape = sc_bottom.shape
    with np.errstate(over="ignore"):  # far from a transition exp overflows: weight 0, as meant
        w_sc = 1 / (1 + np.exp((depth_um - sc_bottom) / r.blend_um))
        w_de = 1 / (1 + np.exp((dej - depth_um) / r.blend_um))
    w_ve = np.clip(1 - w_sc - w_de, 0, None)
    weights = np.stack([w_sc, w_ve, w_de])
    structure = np.zeros(shape, np.float32)
    between = np.zeros(shape, np.float32)  # 1 between cells, 0 inside
    if w_sc.max() > 0.01:
        spacing = rng.uniform(*r.corneocyte_um) / px
        ids, centre, border = voronoi_cells(rng, shape, spacing, r.sc_border_um / px)
        per_cell = rng.uniform(1.0, 1.3, ids.max() + 1)[ids]
        structure += w_sc * unit * (per_cell * (1 - 0.1 * centre) + r.sc_border * border)
        between += w_sc * border
    if w_ve.max() > 0.01:
        spacing = rng.uniform(*r.keratinocyte_um) / px
        ids, centre, border = voronoi_cells(rng, shape, spacing, 0.5 / px)
        nucleus = 1 / (1 + np.exp((centre - 0.4) / 0.05))
        per_cell = rng.uniform(0.85, 1.05, ids.max() + 1)[ids]
        structure += w_ve * unit * (per_cell + r.ve_border * border + r.ve_nucleus * nucleus)
        between += w_ve * border
    if w_de.max() > 0.01:
        fibres = _fibres(rng, shape, r.fibre_um / px)
        structure += w_de * unit * (r.dermis_level + r.dermis_fibre * fibres)
        between += w_de * (1 - fibres)
    tissue = np.array([SC, VE, DE], np.uint8)[np.argmax(weights, axis=0)]

    fat = _adipocytes(
        rng,
        depth_um - dej,
        fat_propensity,
        px,
        r.adipocyte_radius_um,
        r.fat_onset_um,
        r.fat_abundance,
    )
    fat_mask = (fat < 1.0) & (tissue == DE)
    membrane = np.exp(-(((fat - 0.97) / 0.05) ** 2))
    structure[fat_mask] = unit * (
        r.adipose_level * (1 - 0.15 * fat[fat_mask] ** 2) + r.adipose_membrane * membrane[fat_mask]
    )
    between[fat_mask] = 0.15 + membrane[fat_mask]
    tissue[fat_mask] = AD

    wobble = smooth_field(rng, shape, 6 / px)
    outline = smooth_field(rng, shape, 15 / px)
    grain = filtered_noise(rng, shape, (0.8 / px, 0.8 / px))[0]
    granules = np.clip((grain - 0.3) / 1.5, 0, 1)
    acini = smooth_field(rng, shape, 5 / px) if r.acini else None
    hf_mask, drawn, hf_structure, hf_uptake = _follicle_plane(
        follicles, depth_um, shape, wobble, outline, granules.astype(np.float32), unit, r, acini
    )
    structure[drawn] = hf_structure[drawn]
    between[drawn] = hf_uptake[drawn]
    tissue[hf_mask] = HF  # pockets enclosed by a ring and its lobules belong to the follicle

    if r.contrast != 1.0:  # every tissue's difference from mid-grey, stretched or squeezed
        structure = (unit + r.contrast * (structure - unit)).astype(np.float32)
    if r.cell_texture > 0:
        texture = 1 + r.cell_texture * smooth_field(rng, shape, 3 / px)
        structure = (structure * texture).astype(np.float32)
    attenuation = math.exp(-depth_um / r.attenuation_um)
    uptake = np.clip(0.35 + r.uptake_contrast * between + 0.1 * wobble, 0.05, None)
    return np.clip(structure, 0, None) * attenuation, tissue, uptake
