"""A real Docker engine, the overnight images and the compose stack, for the e2e tests.

The engine: ``DOCKER_HOST`` or ``/var/run/docker.sock`` when one answers, else
``scripts/docker-engine.sh start`` (root, ``dockerd`` from ``docker.io``; its data root
``/var/tmp/overnight-docker`` keeps images between runs). Without an engine the tests skip
off CI and FAIL in CI (``CI`` set), with the reason.

The images: the base from ``scripts/base-image.sh``, then every Dockerfile target and the
stand-ins of the override, each tagged with a hash of what went into it (label
``org.overnight.inputs``): an image whose inputs did not change is not rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
STANDINS = ROOT / "tests" / "deploy" / "standins"
PROJECT = "overnighte2e"
VERSION = "0.1.0"
INPUT_LABEL = "org.overnight.inputs"
#: What each Dockerfile target is tagged as (docker-compose.yml's image names).
TARGETS = {
    "api": ["overnight/ingest"],
    "qc-web": ["overnight/qc-web"],
    "dispatcher": ["overnight/dispatcher"],
    "worker": ["overnight/segmentation", "overnight/pnp-counter"],
    "notebook": ["overnight/notebook"],
}
#: What goes into the images (the build context the Dockerfile copies from).
CONTEXT = ["Dockerfile", ".dockerignore", "pyproject.toml", "requirements.lock",
           "scripts/extras.py", "README.md", "shared", "services", "models"]
#: What a target copies on top of CONTEXT (only its own hash changes with it).
EXTRA_CONTEXT = {"notebook": ["examples"]}
SKIP_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
#: The CLI of the venv running the tests (it draws the test fields).
OVERNIGHT = str(Path(sys.executable).parent / "overnight")


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def no_engine(reason: str) -> None:
    """Skip off CI, fail in CI: the deployment tests must never vanish silently there."""
    if in_ci():
        pytest.fail(f"CI must run the Docker e2e tests, but: {reason}", pytrace=False)
    pytest.skip(reason)


def wait_for(
    condition: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.5
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` at timeout."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Docker:
    """The ``docker`` CLI against one engine."""

    env: dict[str, str]

    def run(self, *args: str, check: bool = True, timeout_s: float = 900,
            input_bytes: bytes | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, timeout=timeout_s,
            input=input_bytes.decode() if input_bytes else None, text=True,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
            )
        return proc

    def inspect(self, *names: str) -> list[dict[str, Any]]:
        return json.loads(self.run("inspect", *names).stdout)

    def label(self, image: str) -> str | None:
        proc = self.run("image", "inspect", "-f", f'{{{{ index .Config.Labels "{INPUT_LABEL}" }}}}',
                        image, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def size_mb(self, image: str) -> float:
        return round(int(self.run("image", "inspect", "-f", "{{.Size}}", image).stdout) / 1e6, 1)


def _engine_answers(env: dict[str, str]) -> bool:
    try:
        proc = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                              env=env, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    """A Docker engine that answers (found or started, then stopped), or skip/fail."""
    if shutil.which("docker") is None:
        no_engine("no docker CLI (apt-get install -y docker.io docker-compose debootstrap, "
                  "or `make system-deps`)")
    if shutil.which("docker-compose") is None:
        no_engine("no docker-compose (apt-get install -y docker-compose)")
    env = {**os.environ, "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}
    own_dir = os.environ.get("OVERNIGHT_DOCKER_DIR", "/var/tmp/overnight-docker")
    candidates = [os.environ["DOCKER_HOST"]] if os.environ.get("DOCKER_HOST") else []
    # An engine already running (ours from an earlier run included) is used and left running.
    candidates += ["unix:///var/run/docker.sock", f"unix://{own_dir}/docker.sock"]
    for host in candidates:
        if _engine_answers({**env, "DOCKER_HOST": host}):
            yield Docker({**env, "DOCKER_HOST": host})
            return
    if shutil.which("dockerd") is None:
        no_engine("no Docker engine answers and dockerd is not installed "
                  "(apt-get install -y docker.io)")
    if os.geteuid() != 0:
        no_engine("no Docker engine answers and starting dockerd needs root")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "docker-engine.sh"), "start"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        no_engine(f"scripts/docker-engine.sh could not start dockerd: {proc.stderr.strip()}")
    try:
        yield Docker({**env, "DOCKER_HOST": proc.stdout.strip()})
    finally:  # the engine we started; its data root (the image cache) stays
        subprocess.run(["bash", str(ROOT / "scripts" / "docker-engine.sh"), "stop"],
                       capture_output=True, timeout=120)


def _tree_hash(paths: list[Path], *extra: str) -> str:
    digest = hashlib.sha256()
    for item in extra:
        digest.update(item.encode() + b"\0")
    for top in paths:
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            rel = path.relative_to(ROOT)
            if SKIP_PARTS & set(rel.parts) or path.suffix == ".pyc" or ".egg-info" in str(rel):
                continue
            digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@dataclass
class Images:
    base: str
    standin_tag: str
    build_s: dict[str, float] = field(default_factory=dict)
    rebuilt: list[str] = field(default_factory=list)


def _build(docker: Docker, tags: list[str], inputs: str, args: list[str], name: str,
           images: Images) -> None:
    if all(docker.label(tag) == inputs for tag in tags):
        images.build_s[name] = 0.0
        return
    started = time.monotonic()
    tag_args = [a for tag in tags for a in ("-t", tag)]
    docker.run("build", "-q", "--network", "host", "--label", f"{INPUT_LABEL}={inputs}",
               *tag_args, *args, timeout_s=1800)
    images.build_s[name] = round(time.monotonic() - started, 1)
    images.rebuilt.append(name)


@pytest.fixture(scope="session")
def images(docker: Docker) -> Images:
    """The base, every overnight target and the stand-ins, built unless unchanged."""
    if shutil.which("debootstrap") is None:
        no_engine("debootstrap is missing (apt-get install -y debootstrap): the base image "
                  "is made with it, since no registry can be reached")
    started = time.monotonic()
    proc = subprocess.run(["nice", "-n", "10", "bash", str(ROOT / "scripts" / "base-image.sh")],
                          env=docker.env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"scripts/base-image.sh failed:\n{proc.stderr[-4000:]}"
    base = proc.stdout.strip().splitlines()[-1]
    images = Images(base=base, standin_tag=base.split(":")[-1])
    images.build_s["base"] = round(time.monotonic() - started, 1)
    context = [ROOT / p for p in CONTEXT]

    def overnight_targets() -> None:  # in file order: each reuses the stages of the last
        for target, names in TARGETS.items():
            extra = [ROOT / p for p in EXTRA_CONTEXT.get(target, [])]
            inputs = _tree_hash(context + extra, target, base)
            _build(docker, [f"{n}:{VERSION}" for n in names], inputs,
                   ["--build-arg", f"PYTHON_IMAGE={base}", "--target", target, str(ROOT)],
                   target, images)

    def standins() -> None:
        for standin in ("redis", "s3"):
            inputs = _tree_hash([STANDINS / standin], standin, base)
            _build(docker, [f"overnight-standin/{standin}:{images.standin_tag}"], inputs,
                   ["--build-arg", f"BASE_IMAGE={base}", str(STANDINS / standin)], standin,
                   images)

    # The stand-ins share no layer with overnight's images: built beside them (on a cold
    # engine the pip downloads of one overlap the installs of the other).
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(overnight_targets), pool.submit(standins)]:
            future.result()
    images.build_s["all_images"] = round(time.monotonic() - started, 1)
    if images.rebuilt:  # the images they replaced (untagged now): only those, by their label.
        # A plain prune would also drop the untagged images of the dependency stages
        # (deps-analysis, deps-models: no tagged image descends from them, they are only
        # COPY --from sources), and the next build would reinstall TensorFlow.
        docker.run("image", "prune", "-f", "--filter", f"label={INPUT_LABEL}")
    return images


class Stack:
    """docker-compose.yml + docker-compose.test.yml under one project, on one engine."""

    def __init__(self, docker: Docker, images: Images, workdir: Path) -> None:
        self.docker = docker
        self.workdir = workdir
        self.nas = workdir / "nas"
        (self.nas / "watched").mkdir(parents=True)
        self.token = secrets.token_hex(16)
        self.ingest_port, self.qc_port = free_port(), free_port()
        self.notebook_port = free_port()
        values = {
            "OVERNIGHT_API_TOKEN": self.token,
            "REDIS_PASSWORD": secrets.token_hex(12),
            "MINIO_ROOT_USER": "overnight",
            "MINIO_ROOT_PASSWORD": secrets.token_hex(12),
            "OVERNIGHT_NAS_DIR": str(self.nas),
            "OVERNIGHT_BUCKET": "overnight",
            "OVERNIGHT_WATCH_SOURCES": "file:///data/nas/watched",
            "OVERNIGHT_WATCH_INTERVAL_S": "2",
            "OVERNIGHT_WATCH_STABLE_S": "2",
            "OVERNIGHT_VERSION": VERSION,
            "OVERNIGHT_INGEST_PORT": str(self.ingest_port),
            "OVERNIGHT_QC_PORT": str(self.qc_port),
            "MINIO_CONSOLE_PORT": str(free_port()),
            "OVERNIGHT_NOTEBOOK_PORT": str(self.notebook_port),
        }
        self.values = dict(values)
        # .env.example with the test's values: what a lab does with `cp .env.example .env`.
        lines = []
        for line in (ROOT / ".env.example").read_text().splitlines():
            name = line.split("=", 1)[0].strip()
            if "=" in line and not line.lstrip().startswith("#") and name in values:
                line = f"{name}={values.pop(name)}"
            lines.append(line)
        lines += [f"{k}={v}" for k, v in values.items()]
        self.env_file = workdir / ".env"
        self.env_file.write_text("\n".join(lines) + "\n")
        self.env = {**docker.env, "OVERNIGHT_BASE_IMAGE": images.base,
                    "OVERNIGHT_STANDIN_TAG": images.standin_tag}

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}"

    @property
    def qc(self) -> str:
        return f"http://127.0.0.1:{self.qc_port}"

    def compose(self, *args: str, check: bool = True,
                timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
        argv = ["docker-compose", "-p", PROJECT, "--project-directory", str(ROOT),
                "--env-file", str(self.env_file), "-f", str(ROOT / "docker-compose.yml"),
                "-f", str(ROOT / "docker-compose.test.yml"), *args]
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True,
                              timeout=timeout_s, cwd=ROOT)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv[7:])} exited {proc.returncode}:\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def containers(self, service: str | None = None) -> list[str]:
        args = ["ps", "-q", "-a"] + ([service] if service else [])
        return [c for c in self.compose(*args).stdout.split() if c]

    def health(self) -> dict[str, str]:
        """``{container name: healthy | starting | unhealthy | exited(N) | running}``."""
        ids = self.containers()
        states = {}
        for info in self.docker.inspect(*ids) if ids else []:
            state = info["State"]
            if state.get("Health"):
                status = state["Health"]["Status"] if state["Running"] else "down"
            elif state["Running"]:
                status = "running"
            else:
                status = f"exited({state['ExitCode']})"
            states[info["Name"].lstrip("/")] = status
        return states

    def all_healthy(self) -> dict[str, str] | None:
        states = self.health()
        ok = all(s == "healthy" or (n.endswith("minio-init_1") and s == "exited(0)")
                 for n, s in states.items())
        return states if ok and len(states) >= 8 else None

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service).stdout

    def ip(self, service: str) -> str:
        info = self.docker.inspect(self.containers(service)[0])[0]
        return next(iter(info["NetworkSettings"]["Networks"].values()))["IPAddress"]

    def client(self) -> httpx.Client:
        """An HTTP client of the ingest API with the stack's token."""
        return httpx.Client(
            base_url=self.api, timeout=60, headers={"Authorization": f"Bearer {self.token}"}
        )

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        """``GET /datasets/{id}``: state, counts, failures."""
        with self.client() as client:
            reply = client.get(f"/datasets/{dataset_id}")
        reply.raise_for_status()
        return dict(reply.json())

    def put_in_nas(self, images: list[Path], folder: str) -> None:
        """Copy ``images`` into ``folder`` of the NAS the services mount (world-readable)."""
        target = self.nas / folder
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(0o755)
        for path in images:
            shutil.copy(path, target / path.name)

    def submit_folder(self, folder: str) -> str:
        """``POST /datasets`` of a NAS folder for the cytometry pipeline: the dataset id."""
        with self.client() as client:
            reply = client.post(
                "/datasets", json={"source": f"file:///data/nas/{folder}", "pipeline": "cytometry"}
            )
        assert reply.status_code == 201, reply.text
        return str(reply.json()["id"])

    def upload(self, images: list[Path]) -> tuple[str, dict[str, str]]:
        """A dataset of uploaded ``images``, in that order: its id and ``{file name: key}``."""
        keys = {}
        with self.client() as client:
            reply = client.post("/datasets", json={"source": None, "pipeline": "cytometry"})
            assert reply.status_code == 201, reply.text
            dataset_id = str(reply.json()["id"])
            for path in images:
                with path.open("rb") as file:
                    sent = client.post(
                        f"/datasets/{dataset_id}/images",
                        files={"file": (path.name, file, "image/tiff")},
                    )
                assert sent.status_code == 201, sent.text
                keys[path.name] = str(sent.json()["key"])
        return dataset_id, keys

    def s3(self) -> Any:
        """A MinIO client of the stack's object store (as the services reach it)."""
        from minio import Minio

        return Minio(
            f"{self.ip('minio')}:9000",
            access_key=self.values["MINIO_ROOT_USER"],
            secret_key=self.values["MINIO_ROOT_PASSWORD"],
            secure=False,
            region="us-east-1",
        )

    def network(self) -> str:
        info = self.docker.inspect(self.containers("redis")[0])[0]
        return next(iter(info["NetworkSettings"]["Networks"]))


def synth_fields(out: Path, n: int, seed: int, size: int) -> list[Path]:
    """``n`` generated fields of ``size``² px in ``out/images`` (a Z-stack each: ~10 MB at 512)."""
    subprocess.run(
        [OVERNIGHT, "synth", "cytometry", str(out), "--n", str(n), "--seed", str(seed),
         "--size", str(size)],
        check=True,
        capture_output=True,
    )
    return sorted((out / "images").glob("*.tif"))


@pytest.fixture(scope="session")
def stack(docker: Docker, images: Images) -> Iterator[Stack]:
    """The project's compose stack (down -v first and after); NAS in a world-readable folder.

    One per session: the hostile-conditions module runs on the stack the e2e module leaves
    (each starts with ``up``), which saves a cold CI machine a second start of every service.
    """
    workdir = Path(tempfile.mkdtemp(prefix="overnight-e2e-", dir="/var/tmp"))
    workdir.chmod(0o755)
    stack = Stack(docker, images, workdir)
    for folder in (stack.nas, stack.nas / "watched"):
        folder.chmod(0o755)
    stack.compose("down", "-v", "--remove-orphans", check=False)
    try:
        yield stack
    finally:
        if os.environ.get("OVERNIGHT_E2E_KEEP"):
            print(f"\nkept the stack: docker-compose -p {PROJECT} --env-file {stack.env_file} ...")
        else:
            stack.compose("down", "-v", "--remove-orphans", check=False)
            shutil.rmtree(workdir, ignore_errors=True)
