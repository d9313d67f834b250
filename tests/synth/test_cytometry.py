from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from overnight.errors import ConfigError
from overnight.synth import CytometryRanges, draw_field
from overnight.synth.cells import touching_ids

RANGES = CytometryRanges()


def test_labels_match_the_cell_table(fields):
    for field in fields:
        labels = field.labels
        assert labels.dtype == np.uint32
        ids = np.unique(labels[labels > 0])
        assert ids.tolist() == field.cells["cell_id"].tolist() == list(range(1, len(ids) + 1))
        areas = np.bincount(labels.ravel())[1:]
        assert areas.tolist() == field.cells["area_px"].tolist()
        for cell in field.cells.itertuples():
            y, x = np.nonzero(labels == cell.cell_id)
            assert cell.y == pytest.approx(y.mean()) and cell.x == pytest.approx(x.mean())


def test_each_label_is_one_connected_region(fields):
    for field in fields:
        for index, box in enumerate(ndimage.find_objects(field.labels)):
            _, n_parts = ndimage.label(field.labels[box] == index + 1)  # 4-connectivity
            assert n_parts == 1


def test_only_cells_marked_on_border_are_cut_by_the_field_edge(fields):
    for field in fields:
        edge = np.concatenate(
            [field.labels[0], field.labels[-1], field.labels[:, 0], field.labels[:, -1]]
        )
        on_border = field.cells.loc[field.cells.on_border, "cell_id"]
        assert set(np.unique(edge[edge > 0])) == set(on_border)
    border_share = pd.concat([f.cells for f in fields])["on_border"].mean()
    assert 0.02 < border_share < 0.3


def test_cell_sizes_shapes_and_type_mix(fields):
    cells = pd.concat([f.cells for f in fields])
    free = cells[~cells["touching"] & ~cells["on_border"]]
    diameter = 2 * np.sqrt(free["area_px"] / np.pi)
    for spec in RANGES.cell_types:
        of_type = diameter[free["cell_type"] == spec.name]
        assert len(of_type) > 5
        lo, hi = spec.diameter_px
        assert of_type.between(lo - 2, hi + 2).all(), (spec.name, of_type.min(), of_type.max())
    touching_cells = cells[cells["touching"]]
    assert (2 * np.sqrt(touching_cells["area_px"] / np.pi) <= 75 + 2).all()
    monocyte_share = (cells["cell_type"] == "monocyte").mean()
    assert 0.25 < monocyte_share < 0.55


def test_cell_elongation_by_type(fields):
    for field in fields:
        moments = {}
        for cell in field.cells.itertuples():
            y, x = np.nonzero(field.labels == cell.cell_id)
            eigen = np.linalg.eigvalsh(np.cov(np.vstack([y, x])))
            whole = not (cell.touching or cell.on_border)
            moments[cell.cell_id] = (cell.cell_type, whole, np.sqrt(eigen[1] / eigen[0]))
        for cell_type, whole, aspect in moments.values():
            if not whole:
                continue
            assert aspect < (1.12 if cell_type == "lymphocyte" else 1.45), (cell_type, aspect)


def test_about_a_third_of_cells_touch(fields):
    fractions = [f.cells["touching"].mean() for f in fields]
    assert 0.2 < np.mean(fractions) < 0.5
    for field in fields:
        assert set(touching_ids(field.labels)) == set(
            field.cells.loc[field.cells.touching, "cell_id"]
        )


def test_cell_count_scales_with_area():
    counts = [len(draw_field(np.random.default_rng(s), size=256).cells) for s in range(8)]
    assert 1 <= min(counts) and max(counts) <= 8


def test_every_particle_belongs_to_the_cell_under_it_or_to_glass(fields):
    for field in fields:
        pnps = field.pnps
        iy, ix = np.rint(pnps["y"]).astype(int), np.rint(pnps["x"]).astype(int)
        under = field.labels[iy, ix]
        assert (under == pnps["cell_id"]).all()
        clearance = ndimage.distance_transform_edt(field.labels == 0)
        glass = pnps["cell_id"] == 0
        assert (clearance[iy[glass], ix[glass]] >= RANGES.glass_min_distance_px).all()
        assert 1 <= glass.sum() <= 20


def test_pnp_counts_agree_with_particles(fields):
    for field in fields:
        counted = field.pnps["cell_id"].value_counts()
        expected = field.cells.set_index("cell_id")["pnp_count"]
        assert expected.tolist() == [int(counted.get(i, 0)) for i in expected.index]


def test_particle_coordinates_and_intensities(fields):
    for field in fields:
        pnps, params = field.pnps, field.params
        assert list(pnps.columns) == ["z", "y", "x", "cell_id", "intensity"]
        assert pnps["z"].between(0, params.n_z - 1).all()
        assert pnps["y"].between(-0.5, params.height_px - 0.5).all()  # within the edge pixels
        assert pnps["x"].between(-0.5, params.width_px - 0.5).all()
        log_ratio = np.log(pnps["intensity"] / params.amplitude_adu)
        assert abs(log_ratio.std() - RANGES.amplitude_log_sigma) < 0.06
        assert pnps[["z", "y", "x"]].to_numpy() % 1 != pytest.approx(0)  # sub-pixel


def test_counts_per_cell_follow_the_model(fields):
    counts = pd.concat([f.cells for f in fields])["pnp_count"]
    assert 10 < counts.median() < 28
    assert 0.05 < (counts <= 2).mean() < 0.35  # ~15 % of cells have λ near zero
    assert counts.max() <= 130


def test_close_pairs_occur(fields):
    close = 0
    for field in fields:
        for _, group in field.pnps[field.pnps.cell_id > 0].groupby("cell_id"):
            yx = group[["y", "x"]].to_numpy()
            distance = np.hypot(*(yx[:, None, :] - yx[None, :, :]).transpose(2, 0, 1))
            close += int((distance[np.triu_indices(len(yx), 1)] < field.params.sigma_xy_px).sum())
    assert close >= 20


def test_particles_crowd_towards_the_rim(fields):
    field = fields[0]
    edge = ndimage.distance_transform_edt(field.labels > 0)
    on_cells = field.pnps[field.pnps.cell_id > 0]
    depth = edge[np.rint(on_cells.y).astype(int), np.rint(on_cells.x).astype(int)]
    assert np.median(depth) < 8  # a uniform spread over a 35-70 px disc would be ~ 5-10 px


def test_params_are_within_the_ranges(fields):
    for field in fields:
        p = field.params
        assert RANGES.n_z[0] <= p.n_z <= RANGES.n_z[1]
        assert field.image.shape == (p.n_z, 2, p.height_px, p.width_px)
        for name in ("gain", "read_noise_adu", "snr", "sigma_xy_px", "sigma_z_slices"):
            lo, hi = getattr(RANGES, name)
            assert lo <= getattr(p, name) <= hi, name
        assert p.amplitude_adu == pytest.approx(p.snr * p.read_noise_adu)
        assert 0 <= p.autoscatter_fraction <= 0.1


def test_image_background_and_noise_match_the_params(fields):
    for field in fields:
        p = field.params
        clearance = ndimage.distance_transform_edt(field.labels == 0)
        far = clearance > 40
        spots = field.pnps[["y", "x"]].to_numpy()
        background = field.image[:, 1][:, far].astype(float)
        if len(spots):
            near_spot = np.zeros(field.labels.shape, bool)
            near_spot[np.rint(spots[:, 0]).astype(int), np.rint(spots[:, 1]).astype(int)] = True
            far &= ndimage.distance_transform_edt(~near_spot) > 10
            background = field.image[:, 1][:, far].astype(float)
        assert background.mean() == pytest.approx(p.offset_adu, abs=0.5)
        assert background.std() == pytest.approx(p.read_noise_adu, rel=0.1)


def test_cells_are_bright_in_channel_0_and_particles_in_channel_1(fields):
    field = fields[1]
    focus = int(round(field.params.focus_z))
    cell_channel = field.image[focus, 0].astype(float)
    assert cell_channel[field.labels > 0].mean() > cell_channel[field.labels == 0].mean() + 20
    on_glass = field.pnps[field.pnps.cell_id == 0]
    z, y, x = (np.rint(on_glass[c]).astype(int) for c in ("z", "y", "x"))
    peaks = field.image[z, 1, y, x].astype(float) - field.params.offset_adu
    assert np.median(peaks) > 0.4 * field.params.amplitude_adu


def test_same_seed_same_field_and_different_seed_different_field():
    a = draw_field(np.random.default_rng(11), size=256)
    b = draw_field(np.random.default_rng(11), size=256)
    c = draw_field(np.random.default_rng(12), size=256)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    pd.testing.assert_frame_equal(a.cells, b.cells)
    pd.testing.assert_frame_equal(a.pnps, b.pnps)
    assert a.params == b.params
    assert not np.array_equal(a.image, c.image)


def test_cell_types_and_sizes_are_configuration():
    only_lymphocytes = draw_field(np.random.default_rng(3), size=256, cell_types=("lymphocyte",))
    assert set(only_lymphocytes.cells.cell_type) == {"lymphocyte"}
    with pytest.raises(ConfigError, match="unknown cell type 'neutrophil'"):
        draw_field(np.random.default_rng(3), cell_types=("neutrophil",))
    with pytest.raises(ConfigError, match="below the smallest"):
        draw_field(np.random.default_rng(3), size=64)
    with pytest.raises(ValueError, match="snr: low 9.0 is above high 5.0"):
        CytometryRanges(snr=(9.0, 5.0))


def test_non_square_fields_work():
    field = draw_field(np.random.default_rng(4), size=(256, 384))
    assert field.image.shape[2:] == (256, 384) and field.labels.shape == (256, 384)


@pytest.mark.slow
def test_a_2048_field_works():
    field = draw_field(np.random.default_rng(2), size=2048)
    assert field.image.shape[2:] == (2048, 2048) and field.image.dtype == np.uint16
    assert 8 * 16 * 0.8 <= len(field.cells) <= 30 * 16
    iy, ix = np.rint(field.pnps["y"]).astype(int), np.rint(field.pnps["x"]).astype(int)
    assert (field.labels[iy, ix] == field.pnps["cell_id"]).all()
