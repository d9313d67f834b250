"""The editor's API: load, preview and save corrections; token, CSRF, 409, escaping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile
from fastapi.testclient import TestClient
from qc_helpers import AUTH, TOKEN, XSS, image_ids

ORIGIN = {"Origin": "http://testserver"}


def _url(image_id: str, tail: str = "") -> str:
    return f"/datasets/run1/images/{image_id}/annotation{tail}"


def _first_cell(client: TestClient, image_id: str) -> int:
    cells = client.get(_url(image_id)).json()["cells"]
    assert cells, "the test image should have cells"
    return int(cells[0]["cell_id"])


def test_loading_an_unannotated_image_gives_the_model_result(
    client: TestClient, dataset_dir: Path
) -> None:
    image_id = image_ids(dataset_dir)[0]
    body = client.get(_url(image_id)).json()
    labels = tifffile.imread(dataset_dir / image_id / "labels.tif")
    assert body["version"] is None and body["latest"] is None and body["history"] == []
    assert (body["height"], body["width"]) == labels.shape
    assert body["cell_count"] == len(np.unique(labels)) - 1
    assert body["id_map"].startswith("data:image/png;base64,")
    assert all(len(spot) == 4 for spot in body["spots"])


def test_preview_applies_edits_without_saving(client: TestClient, dataset_dir: Path) -> None:
    image_id = image_ids(dataset_dir)[0]
    before = client.get(_url(image_id)).json()
    cell = _first_cell(client, image_id)
    ops = [{"op": "delete_cell", "cell_id": cell}, {"op": "add_spot", "y": 3, "x": 4}]
    preview = client.post(_url(image_id, "/preview"), json={"base_version": None, "ops": ops})
    assert preview.status_code == 200
    assert preview.json()["cell_count"] == before["cell_count"] - 1
    assert len(preview.json()["spots"]) == len(before["spots"]) + 1
    assert not (dataset_dir / image_id / "annotation").exists()


def test_save_needs_the_token(client: TestClient, dataset_dir: Path) -> None:
    image_id = image_ids(dataset_dir)[0]
    body = {"base_version": None, "ops": [{"op": "add_spot", "y": 3, "x": 4}]}
    assert client.post(_url(image_id), json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope", "Accept": "application/json"}
    assert client.post(_url(image_id), json=body, headers=wrong).status_code == 401
    assert not (dataset_dir / image_id / "annotation").exists()


def test_cookie_saves_need_a_same_origin_request(client: TestClient, dataset_dir: Path) -> None:
    image_id = image_ids(dataset_dir)[0]
    signed = client.post(
        "/login", data={"name": "Ana", "token": TOKEN}, headers=ORIGIN, follow_redirects=False
    )
    assert signed.status_code == 303
    body = {"base_version": None, "ops": [{"op": "add_spot", "y": 3, "x": 4}]}
    for headers in ({"Origin": "http://evil.example"}, {"Referer": "http://evil.example/x"}, {}):
        assert client.post(_url(image_id), json=body, headers=headers).status_code == 403
    assert not (dataset_dir / image_id / "annotation").exists()
    saved = client.post(_url(image_id), json=body, headers=ORIGIN)
    assert saved.status_code == 200 and saved.json()["author"] == "Ana"


def test_saves_are_versioned_and_leave_the_result_untouched(
    client: TestClient, dataset_dir: Path
) -> None:
    image_id = image_ids(dataset_dir)[0]
    folder = dataset_dir / image_id
    result_files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    cell = _first_cell(client, image_id)
    first = client.post(
        _url(image_id),
        json={"base_version": None, "ops": [{"op": "delete_cell", "cell_id": cell}], "note": "n"},
        headers=AUTH,
    )
    assert first.status_code == 200 and first.json()["version"] == 1
    second = client.post(
        _url(image_id),
        json={"base_version": 1, "ops": [{"op": "add_spot", "y": 5, "x": 5, "multiplicity": 2}]},
        headers={**AUTH, "X-Overnight-Reviewer": "Bo"},
    )
    assert second.status_code == 200 and second.json()["version"] == 2
    labels_v1 = tifffile.imread(folder / "annotation" / "v0001" / "labels.tif")
    assert cell not in labels_v1
    record = json.loads((folder / "annotation" / "v0002" / "annotation.json").read_text())
    assert (record["author"], record["parent_version"]) == ("Bo", 1)
    assert any(name.endswith(".model") for name in record["model_versions"]) or (
        record["model_versions"] == {}  # the classical pipeline has no model
    )
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == result_files
    loaded = client.get(_url(image_id)).json()
    assert loaded["version"] == 2 and [h["author"] for h in loaded["history"]] == ["api", "Bo"]
    page = client.get(f"/datasets/run1/images/{image_id}").text
    assert "2 versions of corrections" in page and "on v1" in page
    assert client.get(_url(image_id) + "?version=1").json()["version"] == 1
    # the result still counts as complete: the dataset table lists every image
    assert image_id in client.get("/datasets/run1").text


def test_a_stale_version_is_refused_with_409(client: TestClient, dataset_dir: Path) -> None:
    image_id = image_ids(dataset_dir)[1]
    body = {"base_version": None, "ops": [{"op": "add_spot", "y": 3, "x": 4}]}
    assert client.post(_url(image_id), json=body, headers=AUTH).status_code == 200
    stale = client.post(_url(image_id), json=body, headers=AUTH)
    assert stale.status_code == 409
    assert "Another reviewer saved" in stale.json()["detail"]
    assert sorted(p.name for p in (dataset_dir / image_id / "annotation").iterdir()) == [
        "latest.json",
        "v0001",
    ]


def test_edits_that_do_not_apply_are_422(client: TestClient, dataset_dir: Path) -> None:
    image_id = image_ids(dataset_dir)[0]
    ops = [{"op": "add_spot", "y": 3, "x": 4}, {"op": "delete_cell", "cell_id": 99999}]
    answer = client.post(_url(image_id), json={"base_version": None, "ops": ops}, headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("edit 2: cell 99999 is not in the label image")
    assert answer.headers["x-overnight-edit-index"] == "1"
    unknown = client.post(_url(image_id), json={"ops": [{"op": "paint_it_black"}]}, headers=AUTH)
    assert unknown.status_code == 422
    assert not (dataset_dir / image_id / "annotation").exists()


def test_type_names_and_notes_are_escaped_on_the_page(
    client: TestClient, dataset_dir: Path
) -> None:
    image_id = image_ids(dataset_dir)[0]
    cell = _first_cell(client, image_id)
    ops = [{"op": "set_cell_type", "cell_id": cell, "cell_type": "<b>x</b>"}]
    saved = client.post(
        _url(image_id), json={"base_version": None, "ops": ops, "note": XSS}, headers=AUTH
    )
    assert saved.status_code == 200
    page = client.get(f"/datasets/run1/images/{image_id}").text
    assert XSS not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;" in page
    assert client.get(_url(image_id)).json()["history"][0]["note"] == XSS


def test_corrected_numbers_are_shown_beside_the_model(
    client: TestClient, dataset_dir: Path
) -> None:
    image_id = image_ids(dataset_dir)[0]
    cell = _first_cell(client, image_id)
    page = client.get(f"/datasets/run1/images/{image_id}").text
    assert 'id="corrected-counts"' not in page
    ops = [{"op": "delete_cell", "cell_id": cell}]
    client.post(_url(image_id), json={"base_version": None, "ops": ops}, headers=AUTH)
    page = client.get(f"/datasets/run1/images/{image_id}").text
    assert 'id="corrected-counts"' in page and "corrected v1" in page
    stats = client.get("/datasets/run1/stats").text
    assert 'id="type-stats-corrected"' in stats and "1 corrected image" in stats
    table = client.get("/datasets/run1").text
    assert table.count("corrected v1</span>") == 1
    assert 'title="corrected">' in table
