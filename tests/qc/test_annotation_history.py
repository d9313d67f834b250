"""Earlier annotation versions over the API: list with changes, view read-only, restore."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from fastapi.testclient import TestClient
from qc_helpers import AUTH, TOKEN, XSS, image_ids

ORIGIN = {"Origin": "http://testserver"}


def _url(image_id: str, tail: str = "") -> str:
    return f"/datasets/run1/images/{image_id}/annotation{tail}"


def _two_versions(client: TestClient, image_id: str) -> tuple[dict, int]:  # type: ignore[type-arg]
    """v1 deletes a cell (by Ana), v2 adds a particle of 2 (by Bo); returns the model and cell."""
    model = client.get(_url(image_id)).json()
    cell = int(model["cells"][0]["cell_id"])
    first = client.post(
        _url(image_id),
        json={"base_version": None, "ops": [{"op": "delete_cell", "cell_id": cell}]},
        headers={**AUTH, "X-Overnight-Reviewer": "Ana"},
    )
    assert first.status_code == 200
    ops = [{"op": "add_spot", "y": 3, "x": 4, "multiplicity": 2}]
    second = client.post(
        _url(image_id),
        json={"base_version": 1, "ops": ops, "note": XSS},
        headers={**AUTH, "X-Overnight-Reviewer": "Bo"},
    )
    assert second.status_code == 200 and second.json()["version"] == 2
    return model, cell


def test_versions_list_who_when_and_what_changed(client: TestClient, dataset_dir: Path) -> None:
    image_id = image_ids(dataset_dir)[0]
    empty = client.get(_url(image_id, "/versions")).json()
    assert empty["latest"] is None and empty["versions"] == []
    model, cell = _two_versions(client, image_id)
    listed = client.get(_url(image_id, "/versions")).json()
    assert listed["latest"] == 2
    assert listed["model"] == {
        "cell_count": model["cell_count"],
        "particle_count": model["particle_count"],
    }
    v1, v2 = listed["versions"]
    assert (v1["version"], v1["author"], v1["parent_version"]) == (1, "Ana", None)
    assert v1["changes"]["cells_removed"] == [cell] and v1["summary"] == "1 cell removed"
    assert v1["changed_cells"] == [] == v2["changed_cells"]  # a deleted cell is not in v1
    assert v1["cell_count"] == model["cell_count"] - 1 and v1["created_at"].endswith("+00:00")
    assert (v2["author"], v2["note"], v2["restored_from"]) == ("Bo", XSS, None)
    assert v2["changes"]["spots_added"] == 1 and v2["changes"]["particle_change"] == 2
    assert v2["summary"] == "1 particle spot added"
    assert "files" not in v2 and "cell_types" not in v2


def test_an_earlier_version_and_the_model_result_can_be_viewed(
    client: TestClient, dataset_dir: Path
) -> None:
    image_id = image_ids(dataset_dir)[0]
    model, _ = _two_versions(client, image_id)
    v1 = client.get(_url(image_id, "?version=1")).json()
    assert (v1["version"], v1["latest"]) == (1, 2)
    assert (v1["cell_count"], v1["particle_count"]) == (
        model["cell_count"] - 1,
        model["particle_count"],
    )
    shown = client.get(_url(image_id, "?version=0")).json()
    assert shown["version"] is None and shown["latest"] == 2
    assert (shown["cell_count"], shown["spots"]) == (model["cell_count"], model["spots"])
    missing = client.get(_url(image_id, "?version=7"))
    assert missing.status_code == 422 and "version 7" in missing.json()["detail"]


def test_restore_saves_the_old_version_as_the_new_latest(
    client: TestClient, dataset_dir: Path
) -> None:
    image_id = image_ids(dataset_dir)[0]
    folder = dataset_dir / image_id / "annotation"
    model, cell = _two_versions(client, image_id)
    before = {p: p.read_bytes() for p in folder.glob("v000[12]/*")}
    answer = client.post(
        _url(image_id, "/restore"),
        json={"version": 1, "base_version": 2, "note": "the extra particle was dust"},
        headers={**AUTH, "X-Overnight-Reviewer": "Cy"},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert (body["version"], body["latest"], body["restored_from"]) == (3, 3, 1)
    assert (body["author"], body["cell_count"]) == ("Cy", model["cell_count"] - 1)
    assert {p: p.read_bytes() for p in folder.glob("v000[12]/*")} == before  # history kept
    record = json.loads((folder / "v0003" / "annotation.json").read_text())
    assert (record["restored_from"], record["parent_version"]) == (1, 2)
    assert record["particle_count"] == model["particle_count"]
    labels = tifffile.imread(folder / "v0003" / "labels.tif")
    assert np.array_equal(labels, tifffile.imread(folder / "v0001" / "labels.tif"))
    # the numbers are recomputed from the restored arrays, like any save's
    cells = pd.read_csv(folder / "v0003" / "cells.csv")
    assert cell not in cells["cell_id"].to_list() and len(cells) == model["cell_count"] - 1
    spots = pd.read_csv(folder / "v0003" / "spots.csv")
    assert int(spots["multiplicity"].sum()) == model["particle_count"]
    assert json.loads((folder / "latest.json").read_text())["version"] == 3
    v3 = client.get(_url(image_id, "/versions")).json()["versions"][-1]
    assert v3["restored_from"] == 1 and v3["summary"] == "1 particle spot removed"
    page = client.get(f"/datasets/run1/images/{image_id}").text
    assert "corrected v3" in page and "3 versions of corrections" in page
    assert "on v2 · restores v1" in page


def test_restoring_the_model_result(client: TestClient, dataset_dir: Path) -> None:
    image_id = image_ids(dataset_dir)[1]
    model, _ = _two_versions(client, image_id)
    answer = client.post(
        _url(image_id, "/restore"), json={"version": 0, "base_version": 2}, headers=AUTH
    )
    assert answer.status_code == 200 and answer.json()["version"] == 3
    v3 = client.get(_url(image_id, "/versions")).json()["versions"][-1]
    assert (v3["restored_from"], v3["cell_count"]) == (0, model["cell_count"])
    assert v3["changes"]["cells_added"] and v3["changes"]["spots_removed"] == 1
    assert v3["changed_cells"] == v3["changes"]["cells_added"]  # the deleted cell, back


def test_restore_is_refused_without_the_token_or_from_another_site(
    client: TestClient, dataset_dir: Path
) -> None:
    image_id = image_ids(dataset_dir)[0]
    _two_versions(client, image_id)
    body = {"version": 1, "base_version": 2}
    assert client.post(_url(image_id, "/restore"), json=body).status_code == 401
    signed = client.post(
        "/login", data={"name": "Ana", "token": TOKEN}, headers=ORIGIN, follow_redirects=False
    )
    assert signed.status_code == 303
    evil = {"Origin": "http://evil.example"}
    assert client.post(_url(image_id, "/restore"), json=body, headers=evil).status_code == 403
    assert not (dataset_dir / image_id / "annotation" / "v0003").exists()
    assert client.post(_url(image_id, "/restore"), json=body, headers=ORIGIN).status_code == 200


def test_restore_on_a_stale_version_is_409_and_bad_targets_422(
    client: TestClient, dataset_dir: Path
) -> None:
    image_id = image_ids(dataset_dir)[0]
    _two_versions(client, image_id)
    restore = _url(image_id, "/restore")
    stale = client.post(restore, json={"version": 1, "base_version": 1}, headers=AUTH)
    assert stale.status_code == 409 and "Another reviewer saved" in stale.json()["detail"]
    latest = client.post(restore, json={"version": 2, "base_version": 2}, headers=AUTH)
    assert latest.status_code == 422 and "already the latest" in latest.json()["detail"]
    unknown = client.post(restore, json={"version": 9, "base_version": 2}, headers=AUTH)
    assert unknown.status_code == 422 and "version 9" in unknown.json()["detail"]
    extra = client.post(restore, json={"version": 1, "base_version": 2, "ops": []}, headers=AUTH)
    assert extra.status_code == 422
    assert sorted(p.name for p in (dataset_dir / image_id / "annotation").iterdir()) == [
        "latest.json",
        "v0001",
        "v0002",
    ]
