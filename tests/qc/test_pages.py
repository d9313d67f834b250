"""Every read-only page and download of the QC service, on real pipeline results."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from fastapi.testclient import TestClient
from qc_helpers import BAD_IMAGE, N_IMAGES, XSS, drug_of, image_ids

HTML = {"Accept": "text/html"}


def _summary(results: Path, image_id: str) -> dict:
    return json.loads((results / image_id / "result.json").read_text())["summary"]


def test_datasets_page_lists_the_run_with_progress_and_review_counts(client: TestClient) -> None:
    page = client.get("/", headers=HTML)
    assert page.status_code == 200
    assert 'href="/datasets/run1"' in page.text
    assert f"{N_IMAGES}/{N_IMAGES + 1} done" in page.text  # the corrupt file counts as failed
    assert "1 failed" in page.text
    assert f'<span class="pill unreviewed">{N_IMAGES}</span>' in page.text
    assert "cytometry-classical" in page.text


def test_dataset_page_shows_every_image_its_counts_and_the_failure(
    client: TestClient, dataset_dir: Path
) -> None:
    page = client.get("/datasets/run1", headers=HTML)
    assert page.status_code == 200
    for image_id in image_ids(dataset_dir):
        assert f'/datasets/run1/images/{image_id}"' in page.text
    assert BAD_IMAGE in page.text  # with its reason, in the failures box
    assert "Retry needs the ingest API" in page.text
    assert "lymphocyte PNPs" in page.text and "monocyte cells" in page.text


def test_filter_by_a_metadata_field_keeps_only_matching_images(
    client: TestClient, dataset_dir: Path
) -> None:
    ids = image_ids(dataset_dir)
    rux = [i for n, i in enumerate(ids) if drug_of(n) == "rux"]
    page = client.get("/datasets/run1", params={"f.drug": "rux"}, headers=HTML)
    shown = [i for i in ids if f'/datasets/run1/images/{i}?f.drug=rux"' in page.text]
    assert shown == rux
    patterned = client.get("/datasets/run1", params={"f.drug": "r*"}, headers=HTML)
    assert f"{len(rux)} images of {N_IMAGES}" in patterned.text
    searched = client.get("/datasets/run1", params={"q": ids[0][-9:]}, headers=HTML)
    assert f"1 image of {N_IMAGES}" in searched.text


def test_sort_by_cell_count_descending_orders_rows(client: TestClient, dataset_dir: Path) -> None:
    ids = image_ids(dataset_dir)
    page = client.get("/datasets/run1", params={"sort": "n_cells", "desc": "1"}, headers=HTML)
    positions = {i: page.text.index(f"/datasets/run1/images/{i}?") for i in ids}
    shown = sorted(ids, key=positions.__getitem__)
    cells = [_summary(dataset_dir, i)["n_cells"] for i in shown]
    assert cells == sorted(cells, reverse=True)


def test_pages_beyond_the_last_are_clamped(client: TestClient) -> None:
    page = client.get("/datasets/run1", params={"page": "99", "per": "10"}, headers=HTML)
    assert page.status_code == 200
    assert "page 1 of 1" in page.text


def test_image_page_shows_cells_outlines_particles_and_provenance(
    client: TestClient, dataset_dir: Path
) -> None:
    image_id = image_ids(dataset_dir)[0]
    page = client.get(f"/datasets/run1/images/{image_id}", headers=HTML)
    assert page.status_code == 200
    n_cells = _summary(dataset_dir, image_id)["n_cells"]
    assert page.text.count('<tr data-cell="') == n_cells
    assert page.text.count('<path class="cell"') == n_cells
    n_particles = len((dataset_dir / image_id / "pnps.csv").read_text().splitlines()) - 1
    assert page.text.count('<circle class="pnp') == n_particles
    assert "select_channels" in page.text and "detect_pnps" in page.text
    assert "cell (ch 0)" in page.text and "pnp (ch 1)" in page.text
    assert 'id="next"' in page.text and "1 of 6" in page.text


def test_pictures_are_pngs(client: TestClient, dataset_dir: Path) -> None:
    image_id = image_ids(dataset_dir)[1]
    base = f"/datasets/run1/images/{image_id}"
    for tail in ("/qc.png", "/channels/0.png", "/channels/1.png", "/cells.png"):
        response = client.get(base + tail)
        assert response.status_code == 200, tail
        assert response.content[:8] == b"\x89PNG\r\n\x1a\n", tail
    thumb = client.get(base + "/thumb.jpg")
    assert thumb.headers["content-type"] == "image/jpeg" and thumb.content[:3] == b"\xff\xd8\xff"
    assert client.get(base + "/channels/7.png").status_code == 404


def test_channels_fall_back_to_cell_masks_when_the_source_is_gone(
    client: TestClient, dataset_dir: Path
) -> None:
    image_id = image_ids(dataset_dir)[0]
    result = dataset_dir / image_id / "result.json"
    record = json.loads(result.read_text())
    record["source"] = "/nonexistent/gone.tif"
    result.write_text(json.dumps(record))  # the manifest checks sizes only when listing
    manifest = json.loads((dataset_dir / image_id / "manifest.json").read_text())
    manifest["artefacts"]["result.json"]["size"] = result.stat().st_size
    (dataset_dir / image_id / "manifest.json").write_text(json.dumps(manifest))
    page = client.get(f"/datasets/run1/images/{image_id}", headers=HTML)
    assert "cell masks" in page.text and "cell (ch 0)" not in page.text
    assert client.get(f"/datasets/run1/images/{image_id}/channels/0.png").status_code == 404


def test_downloads_carry_metadata_and_verdict_columns(
    client: TestClient, dataset_dir: Path
) -> None:
    summary = list(csv.DictReader(io.StringIO(client.get("/datasets/run1/summary.csv").text)))
    assert len(summary) == N_IMAGES
    assert {"image_id", "drug", "n_cells", "verdict"} <= set(summary[0])
    cells = list(csv.DictReader(io.StringIO(client.get("/datasets/run1/cells.csv").text)))
    total = sum(_summary(dataset_dir, i)["n_cells"] for i in image_ids(dataset_dir))
    assert len(cells) == total
    assert {"image_id", "drug", "verdict", "cell_id", "pnp_count", "cell_type"} <= set(cells[0])
    one = client.get(f"/datasets/run1/images/{image_ids(dataset_dir)[0]}/cells.csv")
    assert one.text.startswith("cell_id,")


def test_statistics_page_and_plots(client: TestClient, dataset_dir: Path) -> None:
    page = client.get("/datasets/run1/stats", headers=HTML)
    assert page.status_code == 200
    total = sum(_summary(dataset_dir, i)["n_cells"] for i in image_ids(dataset_dir))
    assert (
        f'<tr data-type="all cells"><td>all cells</td><td class="num n-cells">{total}</td>'
        in page.text
    )
    for query in ("type=lymphocyte", "type=all+cells"):
        plot = client.get(f"/datasets/run1/stats/histogram.svg?{query}")
        assert plot.status_code == 200 and plot.headers["content-type"] == "image/svg+xml"
        assert b"PNPs per cell (count)" in plot.content and b"Poisson" in plot.content
    assert client.get("/datasets/run1/stats/histogram.svg?type=neuron").status_code == 404
    groups = client.get("/datasets/run1/stats/groups.svg?by=drug")
    assert groups.status_code == 200 and b"mean PNPs per cell per image (count)" in groups.content


def test_metadata_markup_is_escaped_everywhere(client: TestClient, dataset_dir: Path) -> None:
    image_id = image_ids(dataset_dir)[2]
    for url in ("/datasets/run1", f"/datasets/run1/images/{image_id}"):
        page = client.get(url, headers=HTML)
        assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in page.text
        assert XSS not in page.text and "<script>window" not in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]


def test_health(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_doubtful_first_orders_rows_by_their_qc_flags(
    client: TestClient, dataset_dir: Path
) -> None:
    ids = image_ids(dataset_dir)
    qc = {i: json.loads((dataset_dir / i / "result.json").read_text())["qc"] for i in ids}
    assert all({"flags", "doubt", "signals"} <= set(entry) for entry in qc.values())
    listing = client.get("/datasets/run1", headers=HTML)
    assert 'id="doubtful-first"' in listing.text and "sort=doubt" in listing.text
    page = client.get("/datasets/run1", params={"sort": "doubt", "desc": "1"}, headers=HTML)
    positions = {i: page.text.index(f"/datasets/run1/images/{i}?") for i in ids}
    shown = sorted(ids, key=positions.__getitem__)
    doubts = [qc[i]["doubt"] for i in shown]
    assert doubts == sorted(doubts, reverse=True)
    for image_id in ids:
        for flag in qc[image_id]["flags"]:
            assert f'title="QC flag: {flag}"' in page.text


def test_image_page_shows_the_qc_signals(client: TestClient, dataset_dir: Path) -> None:
    image_id = image_ids(dataset_dir)[0]
    page = client.get(f"/datasets/run1/images/{image_id}", headers=HTML)
    assert page.status_code == 200
    assert 'id="qc-flags"' in page.text and "cell_snr" in page.text
