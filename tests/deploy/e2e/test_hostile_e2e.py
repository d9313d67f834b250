"""The deployed stack under hostile conditions: a full disk, an unreachable S3, secrets, root.

The session's compose stack (``docker-compose.yml`` + ``docker-compose.test.yml``: the one
the e2e module leaves, or a fresh one when this module runs alone), with the compose workers
scaled to 0: each test starts one worker container of its own with
``docker run`` from the compose service's resolved configuration (same image, command
family, env, network, NAS bind, user), changed only where the test makes the condition:

- a **full disk**: the worker's ``/tmp`` is a 4 MiB tmpfs and an uploaded image of ~10 MB
  must be copied there before it can be read;
- an **unreachable S3**: the worker's ``OVERNIGHT_S3_ENDPOINT`` names a closed port.

Each must end in a ``failed`` image whose reason names the path or the store and the
problem, the same line in the container's log, a worker that is still up (no hang), and no
partial result in the bucket (with S3 unreachable the dataset's files cannot be written
either: the failure is recorded all the same, see ``jobs/tasks.py:_finalise``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from compose_stack import Stack, synth_fields, wait_for  # type: ignore[import-not-found]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

#: Environment variables whose values are secrets (compose passes them from .env).
SECRET_NAMES = re.compile(r"(PASSWORD|SECRET|TOKEN)")
OWN_IMAGES = (
    "overnight/ingest",
    "overnight/qc-web",
    "overnight/dispatcher",
    "overnight/segmentation",
    "overnight/pnp-counter",
)
WORKER_IMAGE = "overnight/segmentation:0.1.0"
FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def report() -> Any:
    """Merge this module's figures into ``$OVERNIGHT_DEPLOY_REPORT`` under ``hostile``."""
    yield
    target = os.environ.get("OVERNIGHT_DEPLOY_REPORT")
    if target and FIGURES:
        path = Path(target)
        figures = json.loads(path.read_text()) if path.exists() else {}
        figures["hostile"] = FIGURES
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


# --- helpers -------------------------------------------------------------------------------


def settled(stack: Stack, dataset_id: str, n: int) -> dict[str, Any] | None:
    """The dataset once all ``n`` images are done or failed (None before)."""
    info = stack.dataset(dataset_id)
    counts = info["counts"]
    return info if counts.get("done", 0) + counts.get("failed", 0) == n else None


def objects(stack: Stack, prefix: str) -> set[str]:
    client, bucket = stack.s3(), stack.values["OVERNIGHT_BUCKET"]
    return {o.object_name for o in client.list_objects(bucket, prefix, recursive=True)}


def check_complete(stack: Stack, prefix: str) -> None:
    """``prefix`` holds a manifest whose every artefact has its size and sha256."""
    client, bucket = stack.s3(), stack.values["OVERNIGHT_BUCKET"]
    manifest = json.loads(client.get_object(bucket, f"{prefix}/manifest.json").read())
    for entry in manifest["artefacts"].values():
        data = client.get_object(bucket, entry["key"]).read()
        assert len(data) == entry["size"] and hashlib.sha256(data).hexdigest() == entry["sha256"]


def worker_container(stack: Stack, name: str, *extra: str, env: dict[str, str]) -> str:
    """Start ``overnight worker all`` as the compose worker runs, plus ``extra`` docker args."""
    import yaml

    config = yaml.safe_load(stack.compose("config").stdout)["services"]["segmentation"]
    environment = {**{k: str(v) for k, v in config["environment"].items()}, **env}
    argv = [
        "run",
        "-d",
        "--name",
        name,
        "--network",
        stack.network(),
        "--user",
        "10001:10001",
        "-v",
        f"{stack.nas}:/data/nas:ro",
        *extra,
    ]
    for key, value in environment.items():
        argv += ["-e", f"{key}={value}"]
    stack.docker.run("rm", "-f", name, check=False)
    stack.docker.run(*argv, WORKER_IMAGE, "overnight", "worker", "all")
    return name


def container_log(stack: Stack, name: str) -> str:
    proc = stack.docker.run("logs", name, check=False)
    return proc.stdout + proc.stderr


def running(stack: Stack, name: str) -> bool:
    return bool(stack.docker.inspect(name)[0]["State"]["Running"])


def up_without_workers(stack: Stack) -> dict[str, str] | None:
    states = stack.health()
    ok = all(
        s == "healthy" or (n.endswith("minio-init_1") and s == "exited(0)")
        for n, s in states.items()
    )
    return states if ok and len(states) >= 6 else None


# --- the tests -----------------------------------------------------------------------------


def test_stack_without_workers_comes_up(stack: Stack) -> None:
    stack.compose("up", "-d", "--no-build", "--scale", "segmentation=0", "--scale", "pnp-counter=0")
    wait_for(lambda: up_without_workers(stack), 300, "every service healthy", every_s=1)


def test_containers_run_as_non_root(stack: Stack) -> None:
    """The main process of every overnight container, seen from the host, is UID 10001."""
    for service in ("ingest", "watcher", "qc-web"):
        (container,) = stack.containers(service)
        pid = stack.docker.inspect(container)[0]["State"]["Pid"]
        status = Path(f"/proc/{pid}/status").read_text()
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M)
        assert uids is not None and set(uids.group(1).split()) == {"10001"}, (service, uids)
    for image in OWN_IMAGES:
        user = stack.docker.run("image", "inspect", "-f", "{{.Config.User}}", f"{image}:0.1.0")
        assert user.stdout.strip() == "10001:10001", image


def test_no_image_history_or_config_holds_a_secret(stack: Stack) -> None:
    """``docker history`` and the image config of every image: no secret value, no secret set."""
    values = [v for k, v in stack.values.items() if SECRET_NAMES.search(k) and len(v) >= 8]
    assert len(values) >= 3, stack.values
    base = stack.env["OVERNIGHT_BASE_IMAGE"]
    standins = [
        f"overnight-standin/{s}:{stack.env['OVERNIGHT_STANDIN_TAG']}" for s in ("redis", "s3")
    ]
    for image in [f"{i}:0.1.0" for i in OWN_IMAGES] + standins + [base]:
        history = stack.docker.run("history", "--no-trunc", "--format", "{{.CreatedBy}}", image)
        config = stack.docker.run("image", "inspect", "-f", "{{json .Config.Env}}", image)
        text = history.stdout + "\n" + config.stdout
        for value in values:
            assert value not in text, f"{image}: a secret of the stack is in its history/config"
        assigned = re.findall(r"\b([A-Z_]*(?:PASSWORD|SECRET|TOKEN|ACCESS_KEY)[A-Z_]*)=(\S+)", text)
        assert not assigned, f"{image} sets secrets at build time: {assigned}"
        assert not re.search(r"redis://:[^@\s]+@", text), f"{image}: a Redis URL with password"


def test_full_worker_disk_fails_the_image_with_the_reason(stack: Stack, tmp_path: Path) -> None:
    """/tmp of 4 MiB: the ~10 MB upload cannot be copied there; a 256² one still can."""
    big = synth_fields(tmp_path / "big", 1, seed=21, size=512)  # field-001
    small = synth_fields(tmp_path / "small", 2, seed=22, size=256)[1:]  # field-002: another name
    assert big[0].stat().st_size > 6 * 2**20 > small[0].stat().st_size, "sizes of the fields"
    dataset_id, _ = stack.upload(big + small)
    assert stack.dataset(dataset_id)["n_images"] == 2
    ids = {path.name: path.name.removesuffix(".tif") for path in big + small}
    name = worker_container(
        stack, "overnight-fulldisk-worker", "--tmpfs", "/tmp:rw,size=4m,uid=10001,gid=10001", env={}
    )
    try:
        started = time.monotonic()
        info = wait_for(lambda: settled(stack, dataset_id, 2), 600, "both images settled", 2)
        (failure,) = info["failures"]
        assert failure["image_id"] == ids[big[0].name], info
        reason = failure["reason"]
        assert "No space left on device" in reason and "/tmp/" in reason, reason
        assert info["counts"]["done"] == 1, info
        log = container_log(stack, name)
        assert any(
            "No space left on device" in line and "/tmp/" in line for line in log.splitlines()
        ), log[-3000:]
        assert running(stack, name), "the worker died on a full disk"
        FIGURES["full_disk"] = {"settled_s": round(time.monotonic() - started, 1), "reason": reason}
    finally:
        stack.docker.run("rm", "-f", name, check=False)
    prefix = f"results/{dataset_id}"
    assert not objects(stack, f"{prefix}/{ids[big[0].name]}/"), (
        "a partial result of the failed image"
    )
    check_complete(stack, f"{prefix}/{ids[small[0].name]}")


def test_unreachable_s3_fails_the_images_after_bounded_retries(
    stack: Stack, tmp_path: Path
) -> None:
    """The worker's S3 endpoint is a closed port: each image retried, then failed, no hang."""
    images = synth_fields(tmp_path / "s3", 2, seed=23, size=256)
    stack.put_in_nas(images, "no-s3")
    dataset_id = stack.submit_folder("no-s3")
    endpoint = "minio:9"  # the stand-in's container, a port nothing listens on
    name = worker_container(stack, "overnight-nos3-worker", env={"OVERNIGHT_S3_ENDPOINT": endpoint})
    try:
        started = time.monotonic()
        # RQ's bounded retries (OVERNIGHT_RETRY_MAX, OVERNIGHT_RETRY_BACKOFF_S), then it gives up.
        wait_for(
            lambda: container_log(stack, name).count("no retry left") >= 2,
            420,
            "the worker to give up on both images",
            every_s=5,
        )
        FIGURES["unreachable_s3"] = {"worker_gave_up_after_s": round(time.monotonic() - started, 1)}
        log = container_log(stack, name)
        lines = [
            line
            for line in log.splitlines()
            if "no retry left" in line and "connection to the S3 endpoint failed" in line
        ]
        assert len(lines) >= 2 and all("s3://" in line for line in lines), log[-3000:]
        assert running(stack, name), "the worker died when S3 was unreachable"
        info = wait_for(
            lambda: settled(stack, dataset_id, 2),
            60,
            "both images recorded as failed once the worker gave up on them",
            every_s=2,
        )
        assert info["counts"].get("failed") == 2, info
        for failure in info["failures"]:
            assert "connection to the S3 endpoint failed" in failure["reason"], failure
            assert "s3://" in failure["reason"], failure
        FIGURES["unreachable_s3"]["reason"] = info["failures"][0]["reason"]
    finally:
        stack.docker.run("rm", "-f", name, check=False)
    for path in images:
        partial = objects(stack, f"results/{dataset_id}/{path.name.removesuffix('.tif')}/")
        assert not partial, f"objects of a failed image: {partial}"
