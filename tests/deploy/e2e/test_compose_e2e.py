"""docker-compose.yml, for real: images built, the stack up on a Docker engine, workers crashed.

One stack for the module (the project's own ``docker-compose.yml`` plus
``docker-compose.test.yml``, which only swaps the three third-party images for local
stand-ins). The tests run in file order and build on each other, as a lab's night would:
healthy → watched NAS folder → REST datasets with 1 and 2 workers → QC web → chaos
(SIGKILLed workers, a Redis restart) → watcher restart → down/up → the Kubernetes Job's
container under ``docker run``. Figures go to ``$OVERNIGHT_DEPLOY_REPORT`` (``make
test-deploy``: ``bench/results/deploy.json``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import pytest
from compose_stack import OVERNIGHT, ROOT, Images, Stack, synth_fields, wait_for  # type: ignore[import-not-found]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

FIELD_SIZE = 256
#: The chaos run's fields: larger, so that 24 of them last long enough for 5-6 crashes even
#: when the workers are fast (256² and 384² fields were each all done after 4 crashes once,
#: 384² on an idle machine).
CHAOS_FIELD_SIZE = 768
WORKERS = ("segmentation", "pnp-counter")
FIGURES: dict[str, Any] = {}
DATASETS: dict[str, str] = {}  # name -> dataset id
IMAGE_IDS: dict[str, list[str]] = {}  # name -> image ids


@pytest.fixture(scope="module", autouse=True)
def report(images: Images) -> Any:
    started = time.monotonic()
    yield
    FIGURES["image_build_s"] = images.build_s
    FIGURES["images_rebuilt"] = images.rebuilt
    FIGURES["module_s"] = round(time.monotonic() - started, 1)
    target = os.environ.get("OVERNIGHT_DEPLOY_REPORT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(json.dumps(FIGURES, indent=2, sort_keys=True) + "\n")


# --- helpers -------------------------------------------------------------------------------


def synth(tmp: Path, name: str, n: int, seed: int, size: int = FIELD_SIZE) -> list[Path]:
    """``n`` fields of ``size``² px in ``tmp/name/images``; their ids recorded under ``name``."""
    images = synth_fields(tmp / name, n, seed, size)
    IMAGE_IDS[name] = [p.name.removesuffix(".tif") for p in images]
    return images


def dataset_or_none(stack: Stack, dataset_id: str) -> dict[str, Any] | None:
    """The dataset, or None while the API cannot answer (Redis restarting)."""
    try:
        return stack.dataset(dataset_id)
    except httpx.HTTPError:
        return None


def done(stack: Stack, dataset_id: str, n: int) -> dict[str, Any] | None:
    info = dataset_or_none(stack, dataset_id)
    if info is None:
        return None
    failed = info["counts"].get("failed", 0)
    assert failed == 0, f"dataset {dataset_id}: failures {info.get('failures')}"
    return info if info["state"] == "done" and info["counts"]["done"] == n else None


def check_results(stack: Stack, dataset_id: str, image_ids: list[str]) -> None:
    """Each image: manifest.json in the bucket, every artefact's size and sha256 re-checked."""
    client, bucket = stack.s3(), stack.values["OVERNIGHT_BUCKET"]
    for image_id in image_ids:
        prefix = f"results/{dataset_id}/{image_id}"
        manifest = json.loads(client.get_object(bucket, f"{prefix}/manifest.json").read())
        assert {"cells.csv", "labels.tif", "result.json"} <= set(manifest["artefacts"]), prefix
        for entry in manifest["artefacts"].values():
            data = client.get_object(bucket, entry["key"]).read()
            assert len(data) == entry["size"], entry["key"]
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["key"]
        listed = {o.object_name for o in client.list_objects(bucket, prefix + "/", recursive=True)}
        plain = {k for k in listed if "/.attempts/" not in k and not k.endswith(".commit.json")}
        expected = {e["key"] for e in manifest["artefacts"].values()} | {f"{prefix}/manifest.json"}
        assert plain == expected, f"{prefix}: files outside the manifest {plain ^ expected}"


def s3_writes(stack: Stack) -> list[tuple[str, str]]:
    """(method, key) of every write the S3 stand-in received, from its log on the volume."""
    proc = stack.docker.run(
        "exec", stack.containers("minio")[0], "cat", "/data/moto-writes.jsonl", timeout_s=300
    )
    bucket = stack.values["OVERNIGHT_BUCKET"]
    writes = []
    for line in proc.stdout.splitlines():
        entry = json.loads(line)
        path = unquote(urlparse(entry["url"]).path).lstrip("/")
        if path.startswith(bucket + "/"):
            writes.append((entry["method"], path[len(bucket) + 1 :]))
    return writes


def analyses(stack: Stack, dataset_id: str) -> tuple[Counter[str], Counter[str]]:
    """Per image: complete staged attempts (analysed to the end) and commit writes."""
    manifests: dict[str, set[str]] = {}
    staged: dict[tuple[str, str], set[str]] = defaultdict(set)
    commits: Counter[str] = Counter()
    pattern = re.compile(rf"^results/{re.escape(dataset_id)}/([^/]+)/(.+)$")
    for method, key in s3_writes(stack):
        match = pattern.match(key)
        if not match or method != "PUT":
            continue
        image_id, rest = match.groups()
        if rest.startswith(".attempts/"):
            _, attempt, name = rest.split("/", 2)
            staged[(image_id, attempt)].add(name)
        elif rest == ".commit.json":
            commits[image_id] += 1
        elif rest == "manifest.json":
            manifests.setdefault(image_id, set())
    client, bucket = stack.s3(), stack.values["OVERNIGHT_BUCKET"]
    for image_id in manifests:
        body = client.get_object(bucket, f"results/{dataset_id}/{image_id}/manifest.json").read()
        manifests[image_id] = set(json.loads(body)["artefacts"])
    complete: Counter[str] = Counter()
    for (image_id, _), names in staged.items():
        if image_id in manifests and manifests[image_id] <= names:
            complete[image_id] += 1
    return complete, commits


def metric(stack: Stack, name: str) -> float | None:
    """A counter's value from the ingest API's /metrics (None while it cannot answer)."""
    try:
        reply = httpx.get(f"{stack.api}/metrics", timeout=10)
        reply.raise_for_status()
    except httpx.HTTPError:
        return None
    return sum(
        float(line.split()[-1])
        for line in reply.text.splitlines()
        if line.split(" ")[0].split("{")[0] in (name, name + "_total")
    )


def crash(stack: Stack, container: str) -> None:
    """What a real crash does: SIGKILL of the container's main process, from the host."""
    subprocess.run(
        ["bash", "-c", f"kill -9 $(docker inspect -f '{{{{.State.Pid}}}}' {container})"],
        env=stack.docker.env,
        check=True,
    )


# --- the night -----------------------------------------------------------------------------


def test_stack_comes_up_healthy(stack: Stack) -> None:
    started = time.monotonic()
    stack.compose("up", "-d", "--no-build")
    states = wait_for(stack.all_healthy, 300, "every service healthy", every_s=1)
    FIGURES["seconds_to_healthy"] = round(time.monotonic() - started, 1)
    assert any("watcher" in name for name in states), states
    # The images run as the non-root user the Dockerfile sets, and carry no secret.
    for service in ("ingest", "watcher", "segmentation", "pnp-counter", "qc-web"):
        info = stack.docker.inspect(stack.containers(service)[0])[0]
        assert info["Config"]["User"] == "10001:10001", service
    for image in (
        "overnight/ingest",
        "overnight/segmentation",
        "overnight/qc-web",
        "overnight/dispatcher",
    ):
        history = stack.docker.run("history", "--no-trunc", f"{image}:0.1.0").stdout
        for secret in (stack.token, stack.values["REDIS_PASSWORD"], "PASSWORD=", "TOKEN="):
            assert secret not in history, f"{image} history mentions {secret!r}"
        FIGURES.setdefault("image_size_mb", {})[image] = stack.docker.size_mb(f"{image}:0.1.0")


def test_refuses_to_start_without_a_secret(stack: Stack) -> None:
    env_file = stack.workdir / "no-token.env"
    env_file.write_text(
        "\n".join(
            line
            for line in stack.env_file.read_text().splitlines()
            if not line.startswith("OVERNIGHT_API_TOKEN=")
        )
        + "\n"
    )
    proc = subprocess.run(
        [
            "docker-compose",
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(env_file),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "config",
            "-q",
        ],
        env=stack.env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "OVERNIGHT_API_TOKEN" in proc.stderr


def test_watched_nas_images_are_published_once(stack: Stack, tmp_path_factory) -> None:
    images = synth(tmp_path_factory.mktemp("synth"), "watched", 12, seed=1)
    stack.put_in_nas(images, "watched")

    def watched_id() -> str | None:
        listing = httpx.get(f"{stack.api}/datasets", timeout=10).json()
        return next((d["id"] for d in listing if d["source"] == "file:///data/nas/watched"), None)

    dataset_id = wait_for(watched_id, 120, "the watcher to register the NAS folder")
    DATASETS["watched"] = dataset_id
    wait_for(lambda: done(stack, dataset_id, 12), 1200, "12 watched images done", every_s=2)
    check_results(stack, dataset_id, IMAGE_IDS["watched"])
    enqueued = sum(int(n) for n in re.findall(r"enqueued (\d+) new images", stack.logs("watcher")))
    assert enqueued == 12, f"the watcher enqueued {enqueued} images for 12 files"


def test_rest_dataset_needs_the_token_and_finishes_with_one_worker(
    stack: Stack, tmp_path_factory
) -> None:
    images = synth(tmp_path_factory.mktemp("synth"), "rest1", 12, seed=2)
    stack.put_in_nas(images, "rest1")
    body = {"source": "file:///data/nas/rest1", "pipeline": "cytometry"}
    assert httpx.post(f"{stack.api}/datasets", json=body, timeout=10).status_code == 401
    bad = {"Authorization": "Bearer not-the-token-0000"}
    reply = httpx.post(f"{stack.api}/datasets", json=body, headers=bad, timeout=10)
    assert reply.status_code == 401
    started = time.monotonic()
    DATASETS["rest1"] = dataset_id = stack.submit_folder("rest1")
    wait_for(lambda: done(stack, dataset_id, 12), 1200, "REST dataset done", every_s=1)
    FIGURES["submit_to_done_12_images_1_worker_s"] = round(time.monotonic() - started, 1)
    check_results(stack, dataset_id, IMAGE_IDS["rest1"])


def test_two_worker_replicas(stack: Stack, tmp_path_factory) -> None:
    stack.compose("up", "-d", "--no-build", "--scale", "segmentation=2", "--scale", "pnp-counter=2")
    wait_for(stack.all_healthy, 300, "every service healthy with 2 workers each", every_s=1)
    images = synth(tmp_path_factory.mktemp("synth"), "rest2", 12, seed=3)
    stack.put_in_nas(images, "rest2")
    started = time.monotonic()
    DATASETS["rest2"] = dataset_id = stack.submit_folder("rest2")
    wait_for(lambda: done(stack, dataset_id, 12), 1200, "REST dataset done", every_s=1)
    FIGURES["submit_to_done_12_images_2_workers_s"] = round(time.monotonic() - started, 1)
    check_results(stack, dataset_id, IMAGE_IDS["rest2"])


def test_embedded_run_of_the_same_images(stack: Stack, tmp_path: Path) -> None:
    """``overnight run`` on this machine, same 12 images, 1 and 2 workers: the ratio."""
    for workers, name in ((1, "rest1"), (2, "rest2")):
        started = time.monotonic()
        proc = subprocess.run(
            [
                OVERNIGHT,
                "run",
                str(stack.nas / name),
                "--out",
                str(tmp_path / name),
                "--workers",
                str(workers),
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        seconds = round(time.monotonic() - started, 1)
        FIGURES[f"overnight_run_12_images_{workers}_workers_s"] = seconds
        compose_s = FIGURES.get(f"submit_to_done_12_images_{workers}_worker{'s' * (workers > 1)}_s")
        if compose_s:
            FIGURES[f"compose_over_run_ratio_{workers}_workers"] = round(compose_s / seconds, 2)


def test_qc_web_over_http_and_in_chromium(stack: Stack) -> None:
    dataset_id, image_id = DATASETS["rest1"], IMAGE_IDS["rest1"][0]
    listing = httpx.get(stack.qc + "/", timeout=30)
    assert listing.status_code == 200 and dataset_id in listing.text
    page = httpx.get(f"{stack.qc}/datasets/{dataset_id}/images/{image_id}", timeout=30)
    assert page.status_code == 200 and image_id in page.text
    png = httpx.get(f"{stack.qc}/datasets/{dataset_id}/images/{image_id}/qc.png", timeout=30)
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"

    # Chromium's own headless screenshot: the browser tests keep a session-wide Playwright
    # (sync API) open, and a second sync Playwright in the same process is refused.
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is missing (apt-get install -y chromium)"
    shot = Path(os.environ.get("OVERNIGHT_DEPLOY_ARTEFACTS", stack.workdir)) / "deploy-qc.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    profile = Path(tempfile.mkdtemp(prefix="overnight-e2e-chromium-"))
    try:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--window-size=1280,900",
                "--virtual-time-budget=10000",
                f"--screenshot={shot}",
                f"{stack.qc}/datasets/{dataset_id}",
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert shot.stat().st_size > 10_000
    FIGURES["qc_screenshot"] = str(shot)


def test_chaos_crashed_workers_and_a_redis_restart_lose_nothing(
    stack: Stack, tmp_path_factory
) -> None:
    images = synth(tmp_path_factory.mktemp("synth"), "chaos", 24, seed=4, size=CHAOS_FIELD_SIZE)
    stack.put_in_nas(images, "chaos")
    DATASETS["chaos"] = dataset_id = stack.submit_folder("chaos")
    kills: list[dict[str, Any]] = []
    requeue_delays: list[float] = []
    redis_restarted = False
    workers = [c for service in WORKERS for c in stack.containers(service)]
    while len(kills) < 6:
        # Crash a worker (in turn) while the dataset has images running.
        info = wait_for(
            lambda: (
                (d := dataset_or_none(stack, dataset_id))
                and (d["counts"]["running"] or d["state"] == "done")
                and d
            ),
            600,
            "an image running",
        )
        if info["state"] == "done":
            break
        victim = workers[len(kills) % len(workers)]
        restarts = stack.docker.inspect(victim)[0]["RestartCount"]
        requeued = metric(stack, "overnight_abandoned_jobs_requeued") or 0.0
        crash(stack, victim)
        killed_at = time.monotonic()
        kills.append({"container": victim[:12], "restarts_before": restarts})
        # The restart policy, not the test, brings it back.
        wait_for(
            lambda v=victim, r=restarts: stack.docker.inspect(v)[0]["RestartCount"] > r,
            120,
            f"{victim} restarted by its restart policy",
        )
        if len(kills) == 2 and not redis_restarted:
            stack.docker.run("restart", stack.containers("redis")[0])
            redis_restarted = True
            continue
        if len(requeue_delays) >= 2:
            continue  # two kill -> re-queue delays measured: crash on without waiting for more
        # Its job in hand (if it had one) is re-queued once the lease runs out.
        try:
            wait_for(
                lambda r=requeued: (metric(stack, "overnight_abandoned_jobs_requeued") or 0) > r,
                45,
                "the crashed worker's job re-queued",
            )
            requeue_delays.append(round(time.monotonic() - killed_at, 1))
        except AssertionError:
            pass  # the victim was between jobs
    assert len(kills) >= 5, f"the dataset finished after only {len(kills)} crashes"
    assert redis_restarted
    assert requeue_delays, "no crash hit a worker with a job in hand"
    FIGURES["kill_to_requeue_s"] = requeue_delays
    wait_for(
        lambda: done(stack, dataset_id, 24),
        1800,
        "the chaos dataset done, no human step",
        every_s=2,
    )
    check_results(stack, dataset_id, IMAGE_IDS["chaos"])
    complete, commits = analyses(stack, dataset_id)
    twice = sorted(i for i in IMAGE_IDS["chaos"] if complete[i] > 1 or commits[i] > 1)
    missing = sorted(i for i in IMAGE_IDS["chaos"] if commits[i] == 0)
    FIGURES.update(
        {
            "chaos_images_submitted": 24,
            "chaos_images_published": 24 - len(missing),
            "worker_kills": len(kills),
            "redis_restarts": int(redis_restarted),
            "images_lost": len(missing),
            "images_analysed_twice": len(twice),
            "jobs_requeued_after_crashes": len(requeue_delays),
        }
    )
    assert not missing and not twice, f"lost {missing}, analysed twice {twice}"


def test_restarted_watcher_enqueues_nothing_and_all_are_healthy(stack: Stack) -> None:
    before = {name: stack.dataset(i) for name, i in DATASETS.items()}
    watcher = stack.containers("watcher")[0]
    since = str(int(time.time()) - 1)
    stack.compose("restart", "watcher")
    restarted_at = time.monotonic()
    wait_for(stack.all_healthy, 300, "every service healthy after the chaos", every_s=1)
    # The restarted watcher has scanned several times (interval 2 s + stability 2 s).
    wait_for(lambda: time.monotonic() - restarted_at > 15, 30, "three scan intervals")
    proc = stack.docker.run("logs", "--since", since, watcher)
    logs = proc.stdout + proc.stderr
    assert "watching file:///data/nas/watched" in logs, logs[-2000:]  # the restarted watcher
    assert "enqueued" not in logs, logs[-2000:]
    for name, info in before.items():
        now = stack.dataset(DATASETS[name])
        assert now["counts"] == info["counts"] and now["state"] == "done", (name, now)


def test_down_and_up_keeps_results_and_enqueues_nothing(stack: Stack) -> None:
    counts = {name: stack.dataset(i)["counts"] for name, i in DATASETS.items()}
    stack.compose("down")
    started = time.monotonic()
    stack.compose("up", "-d", "--no-build")
    wait_for(stack.all_healthy, 300, "every service healthy after down/up", every_s=1)
    FIGURES["seconds_to_healthy_after_down_up"] = round(time.monotonic() - started, 1)
    wait_for(
        lambda: time.monotonic() - started > FIGURES["seconds_to_healthy_after_down_up"] + 10,
        30,
        "a few watcher scans",
    )
    for name, dataset_id in DATASETS.items():
        info = stack.dataset(dataset_id)
        assert info["state"] == "done" and info["counts"] == counts[name], (name, info)
        check_results(stack, dataset_id, IMAGE_IDS[name])
    assert "enqueued" not in stack.logs("watcher")


# --- the cluster's container, under docker run ---------------------------------------------

SECRET_VARS = (
    "OVERNIGHT_S3_ACCESS_KEY",
    "OVERNIGHT_S3_SECRET_KEY",
    "OVERNIGHT_REDIS_URL",
    "OVERNIGHT_API_TOKEN",
)


def _quantity(value: str) -> str:
    """Kubernetes memory quantity -> docker's (``4Gi`` -> ``4g``)."""
    for suffix, unit in (("Gi", "g"), ("Mi", "m"), ("Ki", "k")):
        if value.endswith(suffix):
            return value[: -len(suffix)] + unit
    return value


def job_to_docker_run(
    job: dict[str, Any],
    config_maps: dict[str, dict[str, str]],
    secrets: dict[str, dict[str, str]],
    network: str,
) -> list[str]:
    """``docker run`` arguments that start the Job's pod as a kubelet would, on one machine.

    Same image, command and args; env from envFrom (ConfigMaps, Secrets), secretKeyRef and
    plain values with ``$(NAME)`` expanded; the pod's user and group; read-only root
    filesystem, dropped capabilities, no privilege escalation; ``emptyDir`` volumes as tmpfs
    and ``hostPath`` volumes as binds; CPU and memory limits. Anything else fails loudly.
    """
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        else:
            env.update(secrets[source["secretRef"]["name"]])
    for item in container.get("env", []):
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), item["value"])
    context, security = pod["securityContext"], container["securityContext"]
    user = context["runAsUser"]
    assert context["runAsNonRoot"] and user != 0
    argv = [
        "run",
        "--network",
        network,
        "--user",
        f"{user}:{context['runAsGroup']}",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
    ]
    if security.get("readOnlyRootFilesystem"):
        argv.append("--read-only")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            argv += ["--tmpfs", f"{mount['mountPath']}:rw,exec,uid={user},gid={user}"]
        elif "hostPath" in volume:
            mode = ":ro" if mount.get("readOnly") else ""
            argv += ["-v", f"{volume['hostPath']['path']}:{mount['mountPath']}{mode}"]
        else:
            raise AssertionError(f"no docker equivalent for volume {volume}")
    limits = container.get("resources", {}).get("limits", {})
    if "cpu" in limits:
        argv += ["--cpus", limits["cpu"]]
    if "memory" in limits:
        argv += ["--memory", _quantity(limits["memory"])]
    for name, value in env.items():
        argv += ["-e", f"{name}={value}"]
    command = container["command"]
    return [*argv, "--entrypoint", command[0], container["image"], *command[1:], *container["args"]]


def test_the_dispatchers_job_runs_as_a_container(stack: Stack, tmp_path: Path) -> None:
    """The rendered Job, one image and imagesPerPod > 1: exit 0 + published, corrupt -> 3."""
    import yaml

    # No compose worker may take the queued images: the Jobs' containers do the work.
    stack.compose("up", "-d", "--no-build", "--scale", "segmentation=0", "--scale", "pnp-counter=0")
    config = yaml.safe_load(stack.compose("config").stdout)
    service_env = config["services"]["segmentation"]["environment"]
    config_maps = {"overnight": {k: str(v) for k, v in service_env.items() if k not in SECRET_VARS}}
    secrets = {"overnight": {k.lower(): str(service_env[k]) for k in SECRET_VARS}}
    secret_env = [{"name": k, "secret": "overnight", "key": k.lower()} for k in SECRET_VARS]

    images = synth(tmp_path, "jobs", 3, seed=5)
    good, *more = images
    corrupt = tmp_path / "20261125_0930_synth_darkfield_S99_field-099.tif"
    corrupt.write_bytes(b"II*\x00" + os.urandom(4096))
    dataset_id, keys = stack.upload([good, corrupt, *more])

    def render(key: str, images_per_pod: int = 1) -> dict[str, Any]:
        proc = stack.docker.run(
            "run",
            "--rm",
            "-e",
            "OVERNIGHT_JOB_IMAGE=overnight/segmentation:0.1.0",
            "-e",
            "OVERNIGHT_JOB_CONFIG_MAP=overnight",
            "-e",
            f"OVERNIGHT_JOB_SECRET_ENV={json.dumps(secret_env)}",
            "overnight/dispatcher:0.1.0",
            "overnight",
            "dispatch",
            "render-job",
            "--dataset",
            dataset_id,
            "--image",
            key,
            "--images-per-pod",
            str(images_per_pod),
        )
        return yaml.safe_load(proc.stdout)

    def run(job: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        argv = job_to_docker_run(job, config_maps, secrets, stack.network())
        name = job["metadata"]["name"]
        proc = stack.docker.run(*argv[:1], "--name", name, *argv[1:], check=False, timeout_s=900)
        stack.docker.run("rm", "-f", name, check=False)
        return proc

    job = render(keys[good.name])
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [3]
    started = time.monotonic()
    proc = run(job)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    FIGURES["job_container_one_image_s"] = round(time.monotonic() - started, 1)
    check_results(stack, dataset_id, [good.name.removesuffix(".tif")])

    proc = run(render(keys[corrupt.name]))
    assert proc.returncode == 3, (proc.returncode, proc.stderr[-3000:])

    # imagesPerPod: 3 -> `worker drain --max-images 3` off the queue (the corrupt image among
    # them is recorded as failed, the pod still exits 0), then the rest is published.
    job = render("batch-1", images_per_pod=3)
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["worker", "drain"]
    for _ in range(2):  # 4 queued images: the first pod takes 3, the second the rest
        proc = run(job)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    check_results(stack, dataset_id, [p.name.removesuffix(".tif") for p in (good, *more)])
    info = stack.dataset(dataset_id)
    assert info["counts"]["done"] == 3 and info["counts"]["failed"] == 1, info
