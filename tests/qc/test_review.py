"""Verdicts, sign-in and the write protections of the QC service."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from qc_helpers import AUTH, N_IMAGES, TOKEN, image_ids, settings_for

from overnight.errors import ConfigError
from overnight_qc.app import create_app

ORIGIN = {"Origin": "http://testserver"}


def _verdict_url(image_id: str) -> str:
    return f"/datasets/run1/images/{image_id}/verdict"


def _sign_in(client: TestClient, name: str = "Ana Lab") -> None:
    response = client.post(
        "/login",
        data={"name": name, "token": TOKEN, "next": "/datasets/run1"},
        headers=ORIGIN,
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/datasets/run1"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN not in cookie


def test_bearer_verdict_is_stored_next_to_the_result_with_history(
    client: TestClient, dataset_dir: Path
) -> None:
    image_id = image_ids(dataset_dir)[0]
    first = client.post(
        _verdict_url(image_id), data={"verdict": "flagged", "comment": "odd"}, headers=AUTH
    )
    assert first.status_code == 200 and first.json()["who"] == "api"
    second = client.post(
        _verdict_url(image_id),
        data={"verdict": "rejected", "comment": "out of focus"},
        headers={**AUTH, "X-Overnight-Reviewer": "Bo"},
    )
    assert second.status_code == 200
    stored = json.loads((dataset_dir / image_id / "verdict.json").read_text())
    assert (stored["verdict"], stored["comment"], stored["who"]) == (
        "rejected",
        "out of focus",
        "Bo",
    )
    assert [(h["verdict"], h["comment"]) for h in stored["history"]] == [("flagged", "odd")]
    assert client.get(_verdict_url(image_id)).json()["verdict"] == "rejected"


def test_verdicts_survive_a_restart_of_the_service(dataset_dir: Path) -> None:
    image_id = image_ids(dataset_dir)[1]
    with TestClient(create_app(settings_for(dataset_dir))) as first:
        first.post(_verdict_url(image_id), data={"verdict": "accepted"}, headers=AUTH)
    with TestClient(create_app(settings_for(dataset_dir))) as second:
        page = second.get(f"/datasets/run1/images/{image_id}", headers={"Accept": "text/html"})
        assert 'id="verdict-badge">accepted<' in page.text
        listing = second.get("/", headers={"Accept": "text/html"})
        assert '<span class="pill accepted">1</span>' in listing.text


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
    ],
)
def test_verdict_without_the_token_is_refused(
    client: TestClient, dataset_dir: Path, headers: dict[str, str], code: int
) -> None:
    image_id = image_ids(dataset_dir)[0]
    response = client.post(_verdict_url(image_id), data={"verdict": "accepted"}, headers=headers)
    assert response.status_code == code
    assert not (dataset_dir / image_id / "verdict.json").exists()


def test_cookie_verdicts_need_a_same_origin_request(client: TestClient, dataset_dir: Path) -> None:
    image_id = image_ids(dataset_dir)[0]
    _sign_in(client)
    for headers in ({"Origin": "http://evil.example"}, {"Referer": "http://evil.example/x"}, {}):
        refused = client.post(_verdict_url(image_id), data={"verdict": "accepted"}, headers=headers)
        assert refused.status_code == 403, headers
    assert not (dataset_dir / image_id / "verdict.json").exists()
    saved = client.post(
        _verdict_url(image_id) + "?f.drug=rux",
        data={"verdict": "accepted", "comment": "fine", "go": image_ids(dataset_dir)[1]},
        headers=ORIGIN,
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert (
        saved.headers["location"] == f"/datasets/run1/images/{image_ids(dataset_dir)[1]}?f.drug=rux"
    )
    assert json.loads((dataset_dir / image_id / "verdict.json").read_text())["who"] == "Ana Lab"


def test_sign_in_refuses_a_wrong_token_and_foreign_redirects(client: TestClient) -> None:
    wrong = client.post("/login", data={"name": "Ana", "token": "nope"}, headers=ORIGIN)
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    response = client.post(
        "/login",
        data={"name": "Ana", "token": TOKEN, "next": "//evil.example/"},
        headers=ORIGIN,
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"
    cross = client.post(
        "/login", data={"name": "Ana", "token": TOKEN}, headers={"Origin": "http://evil.example"}
    )
    assert cross.status_code == 403
    assert client.get("/login").status_code == 200
    out = client.post("/logout", follow_redirects=False)
    assert out.status_code == 303


def test_forged_cookie_is_not_a_session(client: TestClient, dataset_dir: Path) -> None:
    client.cookies.set("overnight_qc_session", "QW5h.0000")
    response = client.post(
        _verdict_url(image_ids(dataset_dir)[0]), data={"verdict": "accepted"}, headers=ORIGIN
    )
    assert response.status_code == 401


def test_invalid_verdicts_and_long_comments_are_refused(
    client: TestClient, dataset_dir: Path
) -> None:
    image_id = image_ids(dataset_dir)[0]
    assert (
        client.post(_verdict_url(image_id), data={"verdict": "maybe"}, headers=AUTH).status_code
        == 422
    )
    long = {"verdict": "rejected", "comment": "x" * 5000}
    assert client.post(_verdict_url(image_id), data=long, headers=AUTH).status_code == 422


def test_without_a_token_the_service_is_read_only(dataset_dir: Path) -> None:
    with TestClient(create_app(settings_for(dataset_dir, api_token=None))) as client:
        page = client.get("/datasets/run1", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "read-only" in page.text
        response = client.post(
            _verdict_url(image_ids(dataset_dir)[0]), data={"verdict": "accepted"}, headers=AUTH
        )
        assert response.status_code == 403


def test_private_pages_need_a_sign_in(dataset_dir: Path) -> None:
    with TestClient(create_app(settings_for(dataset_dir, qc_reads_public=False))) as client:
        page = client.get("/datasets/run1", headers={"Accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
        assert client.get("/datasets/run1/summary.csv").status_code == 401
        assert client.get("/datasets/run1/summary.csv", headers=AUTH).status_code == 200
    with pytest.raises(ConfigError):
        create_app(settings_for(dataset_dir, qc_reads_public=False, api_token=None))


def test_rejected_images_leave_exports_and_statistics_by_default(
    client: TestClient, dataset_dir: Path
) -> None:
    image_id = image_ids(dataset_dir)[0]
    n_cells = json.loads((dataset_dir / image_id / "result.json").read_text())["summary"]["n_cells"]
    before = client.get("/datasets/run1/stats", headers={"Accept": "text/html"}).text
    client.post(
        _verdict_url(image_id), data={"verdict": "rejected", "comment": "blurred"}, headers=AUTH
    )
    summary = list(csv.DictReader(io.StringIO(client.get("/datasets/run1/summary.csv").text)))
    assert image_id not in {r["image_id"] for r in summary} and len(summary) == N_IMAGES - 1
    everything = list(
        csv.DictReader(io.StringIO(client.get("/datasets/run1/summary.csv?all=1").text))
    )
    assert {r["image_id"]: r["verdict"] for r in everything}[image_id] == "rejected"
    cells = client.get("/datasets/run1/cells.csv").text
    assert image_id not in cells and image_id in client.get("/datasets/run1/cells.csv?all=1").text
    after = client.get("/datasets/run1/stats", headers={"Accept": "text/html"}).text
    total = _all_cells(before)
    assert _all_cells(after) == total - n_cells
    assert (
        _all_cells(client.get("/datasets/run1/stats?all=1", headers={"Accept": "text/html"}).text)
        == total
    )


def _all_cells(page: str) -> int:
    marker = '<tr data-type="all cells"><td>all cells</td><td class="num n-cells">'
    start = page.index(marker) + len(marker)
    return int(page[start : page.index("<", start)])


def test_verdict_filter_lists_reviewed_and_unreviewed(
    client: TestClient, dataset_dir: Path
) -> None:
    image_id = image_ids(dataset_dir)[3]
    client.post(_verdict_url(image_id), data={"verdict": "flagged"}, headers=AUTH)
    flagged = client.get("/datasets/run1?verdict=flagged", headers={"Accept": "text/html"}).text
    assert f"1 image of {N_IMAGES}" in flagged and image_id in flagged
    todo = client.get("/datasets/run1?verdict=unreviewed", headers={"Accept": "text/html"}).text
    assert f"{N_IMAGES - 1} images of {N_IMAGES}" in todo


@pytest.mark.parametrize(
    "path",
    [
        "/datasets/..%2F..%2Fetc/images/passwd",
        "/datasets/run1/images/..%2F..%2Fetc",
        "/datasets/run1/images/%2e%2e",
        "/datasets/run1/images/a%5Cb/qc.png",
        "/datasets/run1/images/.hidden",
        "/datasets/run1/images/x%00y/thumb.jpg",
        "/datasets/other/images/x",
        "/datasets/run1/images/nope",
    ],
)
def test_unsafe_or_unknown_ids_never_reach_storage(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_unsafe_ids_cannot_be_written(client: TestClient, dataset_dir: Path) -> None:
    response = client.post(
        "/datasets/run1/images/..%2F..%2Fescape/verdict", data={"verdict": "accepted"}, headers=AUTH
    )
    assert response.status_code == 404
    assert not list(dataset_dir.parent.glob("**/escape*"))


def test_images_from_folders_and_with_accents_have_pages_and_verdicts(tmp_path: Path) -> None:
    """Issue 13: ids of non-ASCII names and sub-folders were listed, but their pages 404ed."""
    import shutil

    from overnight.pipeline.batch import BatchOptions, run_batch
    from overnight.synth.cytometry import write_dataset

    [image] = write_dataset(tmp_path / "synth", 1, seed=5, size=256)
    source = tmp_path / "in"
    for relative in ("drug-rux/X.tif", "drug-placebo/X.tif", "cellule é 1.tif"):
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, source / relative)
    out = tmp_path / "run1"
    run_batch(
        sorted(source.rglob("*.tif")),
        BatchOptions(pipeline="cytometry-classical", out_url=str(out), dataset_dir=source),
    )
    ids = image_ids(out)
    assert sorted(ids) == sorted(["drug-rux~2FX", "drug-placebo~2FX", "cellule~20~C3~A9~201"])
    with TestClient(create_app(settings_for(out))) as client:
        listing = client.get("/datasets/run1", headers={"Accept": "text/html"})
        assert listing.status_code == 200
        for image_id in ids:
            assert image_id in listing.text
            assert client.get(f"/datasets/run1/images/{image_id}").status_code == 200
            assert client.get(f"/datasets/run1/images/{image_id}/qc.png").status_code == 200
            answer = client.post(_verdict_url(image_id), data={"verdict": "accepted"}, headers=AUTH)
            assert answer.status_code == 200, answer.text
            assert (out / image_id / "verdict.json").is_file()


def test_logout_invalidates_a_copy_of_the_cookies(client: TestClient, dataset_dir: Path) -> None:
    """Issue 13: the login cookie kept working after logout (it was the same for every login)."""
    image_id = image_ids(dataset_dir)[0]
    _sign_in(client)
    stolen = dict(client.cookies)
    assert (
        client.post(
            _verdict_url(image_id), data={"verdict": "accepted"}, headers=ORIGIN
        ).status_code
        == 200
    )
    assert client.post("/logout", headers=ORIGIN, follow_redirects=False).status_code == 303
    client.cookies.clear()
    for name, value in stolen.items():
        client.cookies.set(name, value)
    replay = client.post(_verdict_url(image_id), data={"verdict": "rejected"}, headers=ORIGIN)
    assert replay.status_code == 401
    client.cookies.set("overnight_qc_sid", "forged.0000")
    assert (
        client.post(
            _verdict_url(image_id), data={"verdict": "rejected"}, headers=ORIGIN
        ).status_code
        == 401
    )
    client.cookies.clear()
    _sign_in(client)  # signing in again gives a fresh session that works
    assert (
        client.post(_verdict_url(image_id), data={"verdict": "flagged"}, headers=ORIGIN).status_code
        == 200
    )
