"""Dataset files (issue 13): no CSV formula injection, no staging left behind."""

from __future__ import annotations

import io

import pandas as pd

from overnight.results.artefacts import csv_bytes
from overnight.results.dataset import finish_dataset
from overnight.results.layout import DatasetResults
from overnight.storage import open_store, publish_result


def test_formula_cells_are_quoted_and_numbers_kept(tmp_path) -> None:
    table = pd.DataFrame(
        {
            "drug": ['=HYPERLINK("http://x")', "+cmd|x", "-rux", "@SUM(A1)", "rux", "-2.5"],
            "n": [1, 2, 3, 4, 5, -6],
        }
    )
    back = pd.read_csv(io.BytesIO(csv_bytes(table)), dtype={"drug": str})
    assert back.drug.tolist() == [
        '\'=HYPERLINK("http://x")',
        "'+cmd|x",
        "'-rux",
        "'@SUM(A1)",
        "rux",
        "-2.5",
    ]
    assert back.n.tolist() == [1, 2, 3, 4, 5, -6]


def test_summary_csv_of_an_empty_dataset_is_written(tmp_path) -> None:
    results = DatasetResults(open_store(str(tmp_path)))
    assert finish_dataset(results, []) == 0
    assert (tmp_path / "summary.csv").exists()


def test_finishing_a_dataset_sweeps_staging_left_by_killed_publications(tmp_path) -> None:
    """Issue 13 #9: a worker killed mid-publication left a second copy under .attempts/."""
    store = open_store(str(tmp_path))
    publish_result(store, "img1", {"cells.csv": b"cell_id\n"}, {})
    store.write_bytes("img1/.attempts/dead-attempt/cells.csv", b"cell_id\n")
    store.write_bytes("img2/.attempts/killed-before-commit/cells.csv", b"cell_id\n")
    results = DatasetResults(store)
    assert len(list(results.leftover_staging())) == 2
    store.delete("img1/manifest.json")  # (no result.json here for the summary to read)
    finish_dataset(results, [])
    assert list(results.leftover_staging()) == []
    assert (tmp_path / "img1" / "cells.csv").is_file(), "published files are left alone"
