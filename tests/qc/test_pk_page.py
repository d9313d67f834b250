"""The PK page over a real ``overnight pk run`` output: NCA with units, plots, timepoints.

The output is made once per session from a tiny synthetic skin series (4 timepoints x 3
depths of 64² px) by the real CLI; the concentration is calibrated into a unit that holds
markup, so every header shows whether units are escaped.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from qc_helpers import settings_for  # loaded by tests/qc/conftest.py

from overnight.review.pk import in_tissue_order, parse_nca, signal_table
from overnight_qc.app import create_app

#: A concentration unit with markup: it must show as text, never as an element.
UNIT = "<i>µM</i>"
SCRIPT = "<script>window.__pk = 1</script>"


def make_pk_results(base: Path) -> Path:
    """Run ``overnight synth skin`` and ``overnight pk run`` once; returns the output folder.

    Also used by ``tests/browser/test_pk_browser.py`` (loaded by path), so a session that
    runs both makes the output once.
    """
    out = base / "out"
    if (base / "complete").exists():
        return out
    overnight = str(Path(sys.executable).with_name("overnight"))
    synth = [overnight, "synth", "skin", str(base / "synth"), "--seed", "3", "--size", "64"]
    subprocess.run([*synth, "--n-timepoints", "4", "--n-depths", "3"], check=True)
    pk = [overnight, "pk", "run", str(base / "synth" / "images"), "--out", str(out)]
    subprocess.run([*pk, "--calibration", "0.5", "--unit", UNIT], check=True)
    (base / "complete").write_text("ok")
    return out


@pytest.fixture(scope="session")
def pk_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``pk run`` output folder (read-only: copy it before changing files)."""
    return make_pk_results(tmp_path_factory.getbasetemp() / "pk-results")


@pytest.fixture(scope="module")
def pk_client(pk_results: Path) -> Iterator[TestClient]:
    """A client of the app over the ``pk run`` output, whose dataset id is ``out``."""
    with TestClient(create_app(settings_for(pk_results))) as client:
        yield client


def _client_over(folder: Path) -> TestClient:
    return TestClient(create_app(settings_for(folder)))


def _nca_rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "nca.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


HTML = {"accept": "text/html"}


def test_page_shows_nca_with_units_and_plots(pk_client: TestClient, pk_results: Path) -> None:
    response = pk_client.get("/datasets/out/pk", headers=HTML)
    assert response.status_code == 200
    assert response.headers["server-timing"].startswith("app;dur=")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page = response.text
    assert "<script" not in page.split("</header>", 1)[1]  # no inline script anywhere
    assert UNIT not in page
    escaped = "&lt;i&gt;µM&lt;/i&gt;"
    assert f'data-column="cmax">Cmax<span class="unit">{escaped}</span>' in page
    assert f'data-column="auc_last">AUClast<span class="unit">{escaped}·min</span>' in page
    assert 'data-column="lambda_z">λz<span class="unit">1/min</span>' in page
    assert 'data-column="half_life">t½<span class="unit">min</span>' in page
    rows = _nca_rows(pk_results)
    assert len(rows) >= 3
    for row in rows:
        shown = re.search(
            rf'data-compartment="{row["compartment"]}">.*?<td class="num cmax">([^<]*)</td>'
            r'.*?<td class="num tmax">([^<]*)</td>',
            page,
            re.S,
        )
        assert shown is not None, row["compartment"]
        assert shown.group(1) == f"{float(row['cmax']):.2f}"
        assert float(shown.group(2)) == pytest.approx(float(row["tmax"]))
        if not row["lambda_z"]:  # NaN shows as a dash, with the reason beside it
            assert row["reason"] in page
    assert 'id="pk-heatmap"' in page
    for name in sorted(p.name for p in (pk_results / "pk").glob("*.png")):
        assert f'"/datasets/out/pk/plots/{name}"' in page  # shown, or linked (NCA table)
    assert page.count('class="card timepoint') == 4


def test_plots_tables_and_overlays_are_served(pk_client: TestClient, pk_results: Path) -> None:
    heatmap = pk_client.get("/datasets/out/pk/plots/depth_time_heatmap.png")
    assert heatmap.status_code == 200
    assert heatmap.headers["content-type"] == "image/png"
    assert heatmap.content == (pk_results / "pk" / "depth_time_heatmap.png").read_bytes()
    assert heatmap.headers["etag"]
    table = pk_client.get("/datasets/out/pk/tables/nca.csv")
    assert table.status_code == 200
    assert table.content == (pk_results / "nca.csv").read_bytes()
    assert "attachment" in table.headers["content-disposition"]
    page = pk_client.get("/datasets/out/pk").text
    thumbs = re.findall(r'src="(/datasets/out/pk/timepoints/[^"]+/thumb\.jpg)"', page)
    assert len(thumbs) == 4
    for url in thumbs:
        thumb = pk_client.get(url)
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"  # a JPEG
    overlay = pk_client.get(thumbs[0].replace("thumb.jpg", "overlay.png"))
    assert overlay.status_code == 200 and overlay.content[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "path",
    [
        "/datasets/out/pk/plots/%2e%2e",
        "/datasets/out/pk/plots/%2e%2e%2fseries.json",
        "/datasets/out/pk/plots/..%2F..%2Fnca.csv",
        "/datasets/out/pk/plots/series.json",  # exists, but not under pk/
        "/datasets/out/pk/plots/notes.png",  # not listed
        "/datasets/out/pk/plots/.hidden.png",
        "/datasets/out/pk/plots/sub%2Fdeep.png",
        "/datasets/out/pk/plots/readme.txt",
        "/datasets/out/pk/tables/series.json",
        "/datasets/out/pk/tables/%2e%2e%2fetc%2fpasswd",
        "/datasets/out/pk/timepoints/pk/overlay.png",  # a folder that is no timepoint
        "/datasets/out/pk/timepoints/%2e%2e/overlay.png",
        "/datasets/%2e%2e/pk",
        "/datasets/nope/pk",
    ],
)
def test_unlisted_or_unsafe_names_are_refused(pk_results: Path, tmp_path: Path, path: str) -> None:
    folder = tmp_path / "out"
    shutil.copytree(pk_results, folder)
    (folder / "pk" / "sub").mkdir()
    (folder / "pk" / "sub" / "deep.png").write_bytes(b"\x89PNG deep")
    (folder / "pk" / ".hidden.png").write_bytes(b"\x89PNG hidden")
    (folder / "pk" / "readme.txt").write_text("not a plot")
    with _client_over(folder) as client:
        response = client.get(path)
    assert 400 <= response.status_code < 500, (path, response.status_code)
    assert b"PNG" not in response.content and b"compartment" not in response.content


def test_nca_text_from_storage_is_escaped(pk_results: Path, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    shutil.copytree(pk_results, folder)
    rows = _nca_rows(folder)
    rows[0]["compartment"] = SCRIPT
    rows[0]["reason"] = f'{SCRIPT}<img src=x onerror="window.__pk = 2">'
    rows[0]["cmax"] = "1234.5678"
    with (folder / "nca.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with _client_over(folder) as client:
        page = client.get("/datasets/out/pk", headers=HTML).text
    assert SCRIPT not in page and "<img src=x" not in page
    assert "&lt;script&gt;window.__pk = 1&lt;/script&gt;" in page
    assert '<td class="num cmax">1234.57</td>' in page


def test_a_dataset_without_pk_files_has_no_pk_page(pk_results: Path, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    shutil.copytree(pk_results, folder)
    (folder / "series.json").unlink()
    (folder / "nca.csv").unlink()
    with _client_over(folder) as client:
        assert client.get("/datasets/out/pk", headers=HTML).status_code == 404


def test_dataset_page_links_to_pk_only_for_pk_datasets(results_dir: Path, tmp_path: Path) -> None:
    """On the cytometry results (tests/qc/conftest.py): no link, until an ``nca.csv`` appears."""
    folder = tmp_path / "run1"
    shutil.copytree(results_dir, folder)
    with _client_over(folder) as client:
        assert 'id="pk-link"' not in client.get("/datasets/run1", headers=HTML).text
        (folder / "nca.csv").write_text("compartment,cmax\ndermis,1.5\n")
        page = client.get("/datasets/run1", headers=HTML).text
        assert '<a class="button" id="pk-link" href="/datasets/run1/pk">' in page
        pk_page = client.get("/datasets/run1/pk", headers=HTML).text
    assert '<td class="num cmax">1.50</td>' in pk_page
    assert '<td class="num tmax">–</td>' in pk_page  # missing columns show as dashes


def test_signal_table_weights_depths_by_pixels_and_skips_empty_planes() -> None:
    profiles = (
        b"time,depth,compartment,signal,n_px\n"
        b"0.0,0.0,dermis,10.0,100\n"
        b"0.0,20.0,dermis,40.0,300\n"
        b"0.0,40.0,dermis,,0\n"
        b"30.0,0.0,dermis,5.0,10\n"
        b"0.0,0.0,adipose,,0\n"
        b"30.0,0.0,adipose,2.0,50\n"
    )
    table = signal_table(profiles)
    assert table.times_min == (0.0, 30.0)
    assert table.compartments == ("dermis", "adipose")
    assert table.values[0] == (pytest.approx((10 * 100 + 40 * 300) / 400), 5.0)
    assert math.isnan(table.values[1][0]) and table.values[1][1] == 2.0


def test_nca_rows_follow_tissue_order_then_name() -> None:
    rows = parse_nca(
        b"compartment,cmax,tmax,reason\nadipose,1,0,\ndermis,2,0,\nzeta,3,0,no fit\nalpha,4,0,\n"
    )
    ordered = in_tissue_order(rows, ("dermis", "adipose"))
    assert [r.compartment for r in ordered] == ["dermis", "adipose", "alpha", "zeta"]
    assert ordered[3].reason == "no fit" and ordered[0].reason == ""
    assert math.isnan(ordered[0].lambda_z)


def test_an_unreadable_profile_table_is_reported_not_a_server_error(
    pk_results: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "out"
    shutil.copytree(pk_results, folder)
    (folder / "profiles.csv").write_text("when,where\n1,2\n")
    with _client_over(folder) as client:
        response = client.get("/datasets/out/pk", headers=HTML)
    assert response.status_code == 200
    assert "profiles.csv is unreadable and left out" in response.text
    assert 'id="nca-table"' in response.text and 'id="signal-table"' not in response.text


def test_pk_results_list_like_any_dataset_and_link_to_the_pk_page(pk_client: TestClient) -> None:
    assert pk_client.get("/").status_code == 200
    page = pk_client.get("/datasets/out")
    assert page.status_code == 200
    assert "/datasets/out/pk" in page.text
