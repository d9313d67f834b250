"""``overnight stack`` and ``overnight worker run-image`` as a user runs them."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import redis

from fixtures_redis import RedisServer, fill_plate, free_port, overnight_argv, service_env, wait_for

pytestmark = pytest.mark.slow


def children_of(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent and int(entry.name) not in found:
                found.add(int(entry.name))
                frontier.add(int(entry.name))
    return found


def _answers(client: httpx.Client, path: str) -> bool:
    try:
        return client.get(path).status_code == 200
    except httpx.TransportError:
        return False


def test_stack_runs_everything_and_stops_cleanly(
    tmp_path: Path, nas: Path, synth_images: list[Path]
) -> None:
    fill_plate(nas / "plate1", synth_images, 4)
    port, redis_port, qc_port = free_port(), free_port(), free_port()
    env = service_env(
        storage_url=(tmp_path / "store").as_uri(),
        nas_root=str(nas),
        pipeline="cytometry-classical",
        watch_sources=(nas / "plate1").as_uri(),
        watch_interval_s="1",
        watch_stable_s="0",
    )
    log = (tmp_path / "stack.log").open("wb")
    stack = subprocess.Popen(
        overnight_argv(
            "stack",
            "--workers",
            "1",
            "--port",
            str(port),
            "--redis-port",
            str(redis_port),
            "--qc-port",
            str(qc_port),
            "--data-dir",
            str(tmp_path / "stack"),
        ),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

        def datasets() -> list:
            try:
                return api.get("/datasets").json()
            except httpx.TransportError:
                return []

        listed = wait_for(
            lambda: [d for d in datasets() if d["state"] == "done"],
            180,
            "the watched plate to be done",
        )
        assert listed[0]["counts"]["done"] == 4
        token = (tmp_path / "stack" / "api-token").read_text().strip()
        assert (
            api.post("/datasets", json={}, headers={"Authorization": f"Bearer {token}"}).status_code
            == 201
        )
        assert (tmp_path / "stack" / "redis" / "appendonlydir").is_dir()
        qc = httpx.Client(base_url=f"http://127.0.0.1:{qc_port}", timeout=10)
        wait_for(lambda: _answers(qc, "/healthz"), 60, "the QC web")
        processes = children_of(stack.pid)
        assert len(processes) >= 6  # redis, API, watcher, QC web, 2 workers
    finally:
        os.kill(stack.pid, signal.SIGTERM)
        code = stack.wait(timeout=90)
        log.close()
    assert code == 0, (tmp_path / "stack.log").read_text()[-3000:]
    deadline = time.time() + 10
    while (
        any(
            Path(f"/proc/{pid}").exists()
            and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
            for pid in processes
        )
        and time.time() < deadline
    ):
        time.sleep(0.1)
    survivors = [p for p in processes if Path(f"/proc/{p}").exists()]
    assert survivors == [], f"left running: {survivors}"
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=redis_port, socket_timeout=1).ping()


def test_run_image_exit_codes(
    redis_server: RedisServer, tmp_path: Path, nas: Path, synth_images: list[Path]
) -> None:
    good = fill_plate(nas / "plate1", synth_images, 1)[0]
    (nas / "plate1" / "broken.tif").write_bytes(b"not a tiff at all")
    store = tmp_path / "store"
    (store / "results" / "ds-1").mkdir(parents=True)
    record = {"id": "ds-1", "source": (nas / "plate1").as_uri(), "pipeline": "cytometry-classical"}
    (store / "results" / "ds-1" / "dataset.json").write_text(json.dumps(record))
    env = service_env(
        redis_url=redis_server.url,
        storage_url=store.as_uri(),
        nas_root=str(nas),
        pipeline="cytometry-classical",
    )

    def run_image(key: str) -> subprocess.CompletedProcess[str]:
        argv = overnight_argv("worker", "run-image", "--dataset-id", "ds-1", "--image-key", key)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    assert run_image(good.name).returncode == 0
    assert (store / "results" / "ds-1" / good.stem / "manifest.json").exists()
    assert run_image(good.name).returncode == 0, "a published image is done already"
    bad = run_image("broken.tif")
    assert bad.returncode == 3 and "broken.tif" in bad.stderr
    assert run_image("../escape.tif").returncode != 0
    assert not (store / "results" / "ds-1" / "broken").exists()
