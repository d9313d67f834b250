"""CSV formula injection (issue 13): metadata can never become a spreadsheet formula."""

from __future__ import annotations

import io

import pandas as pd

from overnight.results.artefacts import csv_bytes
from overnight.results.dataset import finish_dataset
from overnight.results.layout import DatasetResults
from overnight.storage import open_store


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
