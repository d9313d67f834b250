"""The ingest API over a real Redis (FastAPI's TestClient): contract, tokens, traversal, caps."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from adversarial import write_adversarial_folder
from fixtures_redis import API_TOKEN, AUTH, UPLOAD_CAP_BYTES, fill_plate
from overnight.config import load_settings
from overnight.errors import ConfigError
from overnight.imaging import relative_stem_of
from overnight.jobs.connection import connect
from overnight.jobs.state import JobBook
from overnight.jobs.status import JobStatus
from overnight.jobs.worker import run_worker
from overnight_ingest.app import create_app
from overnight_ingest.core.config import IngestSettings


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def create(client: TestClient, source: str, **extra: object) -> dict:
    response = client.post(
        "/datasets",
        json={"source": source, "pipeline": "cytometry-classical", **extra},
        headers=AUTH,
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_registering_a_folder_answers_the_contract(
    client: TestClient, nas: Path, synth_images: list[Path], ingest_settings: IngestSettings
) -> None:
    fill_plate(nas / "plate1", synth_images, 3)
    body = {
        "source": (nas / "plate1").as_uri(),
        "pipeline": "cytometry-classical",
        "metadata": {"lab": "b"},
    }
    first = client.post("/datasets", json=body, headers=AUTH)
    assert first.status_code == 201
    dataset_id = first.json()["id"]
    assert first.json() == {"id": dataset_id, "created": True, "n_images": 3, "enqueued": 3}
    again = client.post("/datasets", json=body, headers=AUTH)
    assert (
        again.status_code == 200
        and again.json()["id"] == dataset_id
        and again.json()["enqueued"] == 0
    )

    status = client.get(f"/datasets/{dataset_id}").json()
    assert {"id", "state", "counts", "failures"} <= set(status)
    assert status["state"] == "queued" and status["failures"] == []
    assert status["counts"] == {"queued": 3, "running": 0, "done": 0, "failed": 0}
    assert [d["id"] for d in client.get("/datasets").json()] == [dataset_id]
    dataset_json = (
        Path(ingest_settings.storage_url.removeprefix("file://"))
        / "results"
        / dataset_id
        / "dataset.json"
    )
    assert '"metadata": {\n    "lab": "b"' in dataset_json.read_text()

    book = JobBook(connect(ingest_settings.redis_url))
    image = book.images(dataset_id)[0]
    book.set_status(dataset_id, image.image_id, JobStatus.FAILED, "not a TIFF")
    status = client.get(f"/datasets/{dataset_id}").json()
    assert status["failures"] == [{"image_id": image.image_id, "reason": "not a TIFF"}]
    job = client.get(f"/jobs/{image.job_id}").json()
    assert (job["stage"], job["image_id"], job["status"], job["reason"]) == (
        "segmentation",
        image.image_id,
        "failed",
        "not a TIFF",
    )
    assert job["queue_status"] == "queued"
    retried = client.post(f"/datasets/{dataset_id}/retry", headers=AUTH).json()
    assert retried == {"id": dataset_id, "retried": [image.image_id]}
    assert client.get(f"/jobs/{image.job_id}").json()["status"] == "queued"


def test_unknown_things_are_404(client: TestClient) -> None:
    assert client.get("/datasets/nope").status_code == 404
    assert client.get("/jobs/seg-000000000000000000000000").status_code == 404
    assert client.get("/jobs/not-a-job-id").status_code == 404
    assert client.post("/datasets/nope/retry", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": f"Basic {API_TOKEN}"},
        {"Authorization": API_TOKEN},
        {"Authorization": f"Bearer {API_TOKEN}x"},
    ],
)
def test_writes_without_the_right_token_are_401_and_change_nothing(
    client: TestClient, nas: Path, synth_images: list[Path], tmp_path: Path, headers: dict[str, str]
) -> None:
    fill_plate(nas / "plate1", synth_images, 2)
    before = files_under(tmp_path)
    answers = [
        client.post("/datasets", json={"source": (nas / "plate1").as_uri()}, headers=headers),
        client.post("/datasets", json={}, headers=headers),
        client.post("/datasets/any/images", files={"file": ("a.tif", b"II*\x00")}, headers=headers),
        client.post("/datasets/any/retry", headers=headers),
    ]
    for answer in answers:
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
    assert client.get("/datasets").json() == []
    assert files_under(tmp_path) - before == set()


def test_reads_are_open_unless_protected(ingest_settings: IngestSettings) -> None:
    protected = ingest_settings.model_copy(update={"protect_reads": True})
    with TestClient(create_app(protected)) as client:
        assert client.get("/datasets").status_code == 401
        assert client.get("/datasets", headers=AUTH).status_code == 200
        assert client.get("/healthz").status_code == 200


def test_the_service_does_not_start_without_a_real_token(
    ingest_settings: IngestSettings, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="no API token"):
        create_app(ingest_settings.model_copy(update={"api_token": None}))
    secret = tmp_path / "token"
    secret.write_text("short\n")
    with pytest.raises(ConfigError, match="16 characters"):
        create_app(ingest_settings.model_copy(update={"api_token": None, "api_token_file": secret}))
    secret.write_text("from-a-mounted-secret-file\n")
    app = create_app(
        ingest_settings.model_copy(update={"api_token": None, "api_token_file": secret})
    )
    with TestClient(app) as client:
        answer = client.post(
            "/datasets", json={}, headers={"Authorization": "Bearer from-a-mounted-secret-file"}
        )
        assert answer.status_code == 201


@pytest.mark.parametrize(
    "source",
    [
        "file:///etc",
        "file:///{nas}/../../etc",
        "file://{nas}/%2e%2e/x",
        "file://{nas}/a\\..\\..\\etc",
        "file://{nas}/x\x00y",
        "relative/path",
        "http://example.org/x",
        "file://{nas}/link-out",
        "file://{nas}/no-such-folder",
        "s3://bucket/../../etc",
        "s3://bucket/a/%2e%2e/%2e%2e/etc",
        "file://{nas}/" + "a" * 300,
    ],
)
def test_sources_outside_the_nas_are_refused(
    client: TestClient, nas: Path, tmp_path: Path, source: str
) -> None:
    (nas / "link-out").symlink_to(tmp_path)
    answer = client.post("/datasets", json={"source": source.format(nas=nas)}, headers=AUTH)
    assert 400 <= answer.status_code < 500, answer.text
    assert client.get("/datasets").json() == []


@pytest.mark.parametrize("dataset_id", ["..", ".hidden", "a\\b", "x%00y", "%2e%2e", "a b"])
def test_bad_dataset_ids_are_4xx(client: TestClient, dataset_id: str) -> None:
    assert 400 <= client.get(f"/datasets/{dataset_id}").status_code < 500
    assert 400 <= client.post(f"/datasets/{dataset_id}/retry", headers=AUTH).status_code < 500


def test_uploads_land_in_the_dataset_and_are_queued(
    client: TestClient, synth_images: list[Path], ingest_settings: IngestSettings, tmp_path: Path
) -> None:
    dataset_id = client.post(
        "/datasets", json={"metadata": {"via": "upload"}}, headers=AUTH
    ).json()["id"]
    payload = synth_images[0].read_bytes()
    answer = client.post(
        f"/datasets/{dataset_id}/images", files={"file": ("field_1.tif", payload)}, headers=AUTH
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["size_bytes"] == len(payload)
    stored = tmp_path / "store" / "uploads" / dataset_id / "field_1.tif"
    assert stored.read_bytes() == payload
    assert client.get(f"/datasets/{dataset_id}").json()["counts"]["queued"] == 1
    duplicate = client.post(
        f"/datasets/{dataset_id}/images", files={"file": ("field_1.tif", payload)}, headers=AUTH
    )
    assert duplicate.status_code == 409


@pytest.mark.parametrize(
    "name",
    [
        "../evil.tif",
        "..\\evil.tif",
        "/tmp/evil.tif",
        "sub/evil.tif",
        ".evil.tif",
        "evil.txt",
        "%2e%2e%2fevil.tif",
        "",
    ],
)
def test_upload_names_that_could_escape_are_refused(
    client: TestClient, tmp_path: Path, name: str
) -> None:
    dataset_id = client.post("/datasets", json={}, headers=AUTH).json()["id"]
    before = files_under(tmp_path)
    answer = client.post(
        f"/datasets/{dataset_id}/images", files={"file": (name, b"II*\x00data")}, headers=AUTH
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert files_under(tmp_path) - before == set()
    assert not list(Path("/tmp").glob("evil*"))


def test_oversized_uploads_are_413_and_leave_nothing(client: TestClient, tmp_path: Path) -> None:
    dataset_id = client.post("/datasets", json={}, headers=AUTH).json()["id"]
    before = files_under(tmp_path)
    big = b"II*\x00" + bytes(UPLOAD_CAP_BYTES + 10)
    declared = client.post(
        f"/datasets/{dataset_id}/images", files={"file": ("big.tif", big)}, headers=AUTH
    )
    assert declared.status_code == 413 and "limit" in declared.json()["detail"]

    boundary = "xyzBOUNDARYxyz"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.tif"\r\n'
        "Content-Type: image/tiff\r\n\r\n"
    ).encode()

    def chunks():  # no Content-Length: the cap must hold while the body streams in
        yield head
        for _ in range(UPLOAD_CAP_BYTES // 65536 + 2):
            yield bytes(65536)
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = client.post(
        f"/datasets/{dataset_id}/images",
        content=chunks(),
        headers={**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert streamed.status_code == 413
    assert files_under(tmp_path) - before == set()


def test_other_form_fields_count_against_the_upload_cap(client: TestClient, tmp_path: Path) -> None:
    """Issue 13: 300 MB of non-file form fields were accepted; a huge part header gave 500."""
    dataset_id = client.post("/datasets", json={}, headers=AUTH).json()["id"]
    boundary = "xyzBOUNDARYxyz"

    def padded():  # a small file, then a giant ordinary field, no Content-Length
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.tif"\r\n'
            f"\r\nII*\x00\r\n--{boundary}\r\n"
            'Content-Disposition: form-data; name="note"\r\n\r\n'
        ).encode()
        for _ in range(UPLOAD_CAP_BYTES // 65536 + 4):
            yield b"x" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    answer = client.post(f"/datasets/{dataset_id}/images", content=padded(), headers=headers)
    assert answer.status_code == 413, answer.text
    long_header = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{"a" * 20000}.tif"\r\n\r\nII*\x00\r\n--{boundary}--\r\n'
    ).encode()
    answer = client.post(f"/datasets/{dataset_id}/images", content=long_header, headers=headers)
    assert answer.status_code == 400, answer.text


def test_uploading_into_a_folder_dataset_is_refused(
    client: TestClient, nas: Path, synth_images: list[Path]
) -> None:
    fill_plate(nas / "plate1", synth_images, 1)
    dataset_id = create(client, (nas / "plate1").as_uri())["id"]
    answer = client.post(
        f"/datasets/{dataset_id}/images", files={"file": ("x.tif", b"II*\x00")}, headers=AUTH
    )
    assert answer.status_code == 409


def test_health_and_metrics(client: TestClient, nas: Path, synth_images: list[Path]) -> None:
    fill_plate(nas / "plate1", synth_images, 2)
    create(client, (nas / "plate1").as_uri())
    assert client.get("/healthz").json() == {"status": "ok", "redis": "ok"}
    text = client.get("/metrics").text
    assert 'overnight_queue_depth{queue="overnight-segmentation"} 2.0' in text
    assert 'overnight_images{status="queued"} 2.0' in text
    assert "overnight_job_duration_seconds" in text


def test_health_is_503_when_redis_is_gone(ingest_settings: IngestSettings, redis_server) -> None:
    with TestClient(create_app(ingest_settings)) as client:
        redis_server.stop()
        assert client.get("/healthz").status_code == 503
        assert client.get("/datasets").status_code == 503
        redis_server.start()


def test_openapi_documents_every_route(client: TestClient) -> None:
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {
        "/datasets",
        "/datasets/{dataset_id}",
        "/datasets/{dataset_id}/images",
        "/datasets/{dataset_id}/retry",
        "/jobs/{job_id}",
        "/healthz",
        "/metrics",
    } <= paths


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERNIGHT_WATCH_SOURCES", "file:///a, s3://b/c")
    monkeypatch.setenv("OVERNIGHT_UPLOAD_MAX_BYTES", "1234")
    settings = load_settings(IngestSettings)
    assert (
        settings.watched_sources() == ["file:///a", "s3://b/c"]
        and settings.upload_max_bytes == 1234
    )


def test_the_adversarial_folder_loses_nothing_over_rest(
    client: TestClient,
    nas: Path,
    synth_images: list[Path],
    ingest_settings: IngestSettings,
    tmp_path: Path,
) -> None:
    """Issue 13: every entry is analysed or failed with a reason, in the API and failures.json."""
    root = nas / "hostile"
    found = write_adversarial_folder(root, synth_images[0], tmp_path / "elsewhere")
    created = create(client, root.as_uri())
    assert created["n_images"] == len(found)
    run_worker(ingest_settings, "all", burst=True)
    status = client.get(f"/datasets/{created['id']}").json()
    failed = {relative_stem_of(f["image_id"]): f["reason"] for f in status["failures"]}
    assert status["state"] == "done_with_failures" or status["counts"]["queued"] == 0
    assert status["counts"]["done"] == 8 and status["counts"]["failed"] == 4, status
    assert set(failed) == {"dangling", "folder", "outside", "a.tif"} and all(failed.values())
    assert "same image id" in failed["a.tif"]
    assert "outside the dataset folder" in failed["outside"]
    store = Path(ingest_settings.storage_url.removeprefix("file://")) / "results" / created["id"]
    summary = (store / "summary.csv").read_text(encoding="utf-8")
    assert len(summary.splitlines()) == 1 + 8
    on_disk = json.loads((store / "failures.json").read_text())
    assert {relative_stem_of(f["image_id"]) for f in on_disk} == set(failed)
    for image_id in ("drug-rux~2FX", "drug-placebo~2FX", "cellule~20~C3~A9~201"):
        assert (store / image_id / "manifest.json").is_file()


def test_oversized_metadata_is_refused(client: TestClient, nas: Path) -> None:
    answer = client.post("/datasets", json={"metadata": {"x": "y" * 100_000}}, headers=AUTH)
    assert answer.status_code == 422
    assert client.get("/datasets").json() == []
