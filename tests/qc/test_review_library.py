"""The review library on its own: table queries, statistics, verdict files, the index cache."""

from __future__ import annotations

import math
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from qc_helpers import N_IMAGES, image_ids

from overnight.review.catalog import Catalog, Layout
from overnight.review.index import DatasetIndex, ImageRow
from overnight.review.stats import count_histogram, group_stats, histograms_by_type
from overnight.review.table import ImageQuery, neighbours, page_of, query_images
from overnight.review.verdicts import (
    Verdict,
    VerdictFile,
    VerdictRecord,
    read_verdict,
    record_verdict,
)
from overnight.storage import LocalStore


def _row(image_id: str, sample: str, n_cells: float, verdict: str | None = None) -> ImageRow:
    decision = None
    if verdict:
        decision = VerdictFile(
            image_id=image_id,
            verdict=Verdict(verdict),
            comment="",
            who="x",
            when=datetime(2026, 11, 25, tzinfo=UTC),
        )
    return ImageRow(image_id, image_id, {"sample": sample}, {"n_cells": n_cells}, verdict=decision)


INDEX = DatasetIndex(
    "ds",
    "results/ds",
    rows=(
        _row("img_1", "S1", 5),
        _row("img_2", "S2", float("nan")),
        _row("img_10", "s1", 9, "rejected"),
        _row("img_3", "S10", 1, "accepted"),
    ),
    metadata_columns=("sample",),
    type_names=(),
)


def _ids(query: ImageQuery) -> list[str]:
    return [r.image_id for r in query_images(INDEX, query).rows]


def test_natural_order_filters_patterns_and_verdicts() -> None:
    assert _ids(ImageQuery()) == ["img_1", "img_2", "img_3", "img_10"]
    assert _ids(ImageQuery(filters={"sample": "s1"})) == ["img_1", "img_10"]  # case-insensitive
    assert _ids(ImageQuery(filters={"sample": "S1*"})) == ["img_1", "img_3", "img_10"]
    assert _ids(ImageQuery(verdict="unreviewed")) == ["img_1", "img_2"]
    assert _ids(ImageQuery(verdict="reviewed")) == ["img_3", "img_10"]
    assert _ids(ImageQuery(text="G_1")) == ["img_1", "img_10"]


def test_numbers_sort_numerically_and_missing_values_last_both_ways() -> None:
    assert _ids(ImageQuery(sort="n_cells")) == ["img_3", "img_1", "img_10", "img_2"]
    assert _ids(ImageQuery(sort="n_cells", descending=True)) == [
        "img_10",
        "img_1",
        "img_3",
        "img_2",
    ]
    assert _ids(ImageQuery(sort="sample")) == ["img_1", "img_10", "img_2", "img_3"]


def test_pages_are_clamped_and_sized_within_bounds() -> None:
    rows = list(INDEX.rows) * 30  # 120 rows
    page = page_of(rows, page=99, page_size=50)
    assert (page.page, page.n_pages, len(page.rows), page.total) == (3, 3, 20, 120)
    assert page_of(rows, page=1, page_size=1).page_size == 10
    assert page_of([], page=1, page_size=50).n_pages == 1


def test_neighbours_follow_the_filtered_order() -> None:
    query = ImageQuery(filters={"sample": "S1*"})
    assert neighbours(INDEX, query, "img_3") == ("img_1", "img_10", 2, 3)
    assert neighbours(INDEX, query, "img_2") == ("img_1", "img_3", 0, 3)  # filtered out


def test_histogram_counts_cells_and_poisson_expectation() -> None:
    hist = count_histogram("t", np.array([0, 1, 1, 2, 2, 2]))
    assert hist.counts[:3] == (1, 2, 3) and sum(hist.counts) == 6
    assert hist.mean == pytest.approx(4 / 3) and hist.var == pytest.approx(0.6667, abs=1e-4)
    assert hist.vmr == pytest.approx(0.5) and "Poisson" in hist.excess
    assert sum(hist.poisson) == pytest.approx(6, rel=0.01)  # n × pmf, up to the 99.9 % quantile
    poisson_like = count_histogram("t", np.random.default_rng(0).poisson(12, 20000))
    assert poisson_like.vmr == pytest.approx(1.0, abs=0.05)
    empty = count_histogram("t", np.array([], dtype=int))
    assert empty.n_cells == 0 and math.isnan(empty.vmr) and empty.excess == "not enough cells"


def test_histograms_per_type_then_all_cells() -> None:
    types = np.array(["b", "a", "a", "c"])
    hists = histograms_by_type(types, np.array([1, 2, 3, 4]), ["a", "b"])
    assert [(h.cell_type, h.n_cells) for h in hists] == [
        ("a", 2),
        ("b", 1),
        ("c", 1),
        ("all cells", 4),
    ]


def test_group_stats_keep_per_image_means() -> None:
    rows = [
        ImageRow("i1", "p", {"drug": "rux"}, {"n_cells": 3, "n_t": 3, "pnp_per_t_mean": 2.0}),
        ImageRow("i2", "p", {"drug": "rux"}, {"n_cells": 1, "n_t": 1, "pnp_per_t_mean": 4.0}),
        ImageRow("i3", "p", {}, {"n_cells": 0, "n_t": 0, "pnp_per_t_mean": float("nan")}),
    ]
    groups = group_stats(rows, "drug", ["t"])
    assert [(g.group, g.n_images, g.n_cells, g.pnp_means["t"]) for g in groups] == [
        ("(none)", 1, 0, ()),
        ("rux", 2, 4, (2.0, 4.0)),
    ]


def test_verdict_file_keeps_history_and_ignores_garbage(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    when = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    assert read_verdict(store, "img") is None
    record_verdict(store, "img", "img", VerdictRecord(verdict=Verdict.FLAGGED, who="a", when=when))
    saved = record_verdict(
        store,
        "img",
        "img",
        VerdictRecord(verdict=Verdict.ACCEPTED, comment="ok", who="b", when=when),
    )
    assert saved.verdict is Verdict.ACCEPTED and [h.who for h in saved.history] == ["a"]
    assert read_verdict(store, "img") == saved
    store.write_bytes("img/verdict.json", b"{not json")
    assert read_verdict(store, "img") is None


def test_index_rebuild_reuses_unchanged_rows(results_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(results_dir, tmp_path / "run")
    store = LocalStore(tmp_path / "run")
    catalog = Catalog(store, Layout(single_id="run"), ttl_s=0)
    first = catalog.index("run")
    assert len(first.rows) == N_IMAGES and first.type_names == ("lymphocyte", "monocyte")
    assert "drug" in first.metadata_columns and first.metadata_columns[:3] == (
        "date",
        "time",
        "user",
    )
    changed = image_ids(tmp_path / "run")[0]
    catalog.save_verdict(
        "run", changed, VerdictRecord(verdict=Verdict.REJECTED, who="t", when=datetime.now(UTC))
    )
    (tmp_path / "run" / changed / "verdict.json").touch()
    second = catalog.index("run")
    assert second.by_id[changed].verdict_name == "rejected"
    unchanged = image_ids(tmp_path / "run")[1]
    assert second.by_id[unchanged] is first.by_id[unchanged]


def test_incomplete_results_are_not_indexed(results_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(results_dir, tmp_path / "run")
    ids = image_ids(tmp_path / "run")
    (tmp_path / "run" / ids[0] / "manifest.json").unlink()  # still being published
    (tmp_path / "run" / ids[1] / "cells.csv").write_text("cell_id\n")  # size differs from manifest
    index = Catalog(LocalStore(tmp_path / "run"), Layout(single_id="run"), ttl_s=0).index("run")
    assert sorted(index.by_id) == ids[2:]


def test_stale_listings_are_served_while_refreshing_in_the_background(
    results_dir: Path, tmp_path: Path
) -> None:
    shutil.copytree(results_dir, tmp_path / "run")
    catalog = Catalog(LocalStore(tmp_path / "run"), Layout(single_id="run"), ttl_s=0.2)
    assert len(catalog.index("run").rows) == N_IMAGES
    shutil.rmtree(tmp_path / "run" / image_ids(tmp_path / "run")[0])
    assert len(catalog.index("run").rows) == N_IMAGES  # within the TTL: cached
    deadline = time.monotonic() + 10
    while len(catalog.index("run").rows) != N_IMAGES - 1:
        assert time.monotonic() < deadline, "the background refresh never landed"
        time.sleep(0.05)
