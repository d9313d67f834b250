"""docker-compose.yml, .env.example and the Dockerfile, by parsing.

``docker-compose config`` validates the file (unknown keys, interpolation, missing secrets);
the rest is checked by parsing. ``tests/deploy/e2e`` builds the images and runs the stack on a
real Docker engine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
WORKERS = {"segmentation", "pnp-counter"}
DOCKERFILE = ROOT / "Dockerfile"
#: The contract: the command each Dockerfile target runs (compose gives pnp-counter its own).
IMAGE_COMMANDS = {
    "api": ["overnight", "ingest", "serve", "--host", "0.0.0.0", "--port", "8000"],
    "worker": ["overnight", "worker", "segmentation"],
    "worker-gpu": ["overnight", "worker", "segmentation"],
    "qc-web": ["overnight", "qc-web", "--host", "0.0.0.0", "--port", "8080"],
    "dispatcher": ["overnight", "dispatch", "run"],
}
MODEL_FREE = ("api", "qc-web", "dispatcher")
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?][^}]*)?\}")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def _docker_compose(*args: str, env_file: Path = ENV_EXAMPLE) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: run scripts/system-deps.sh (make test does)")
    return subprocess.run(
        [binary, "--env-file", str(env_file), "-f", str(COMPOSE), *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip


def test_compose_config_is_valid() -> None:
    result = _docker_compose("config", "-q")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "secret", ["OVERNIGHT_API_TOKEN", "REDIS_PASSWORD", "MINIO_ROOT_PASSWORD", "OVERNIGHT_NAS_DIR"]
)
def test_compose_refuses_to_start_without_a_secret(tmp_path: Path, secret: str) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in _env_example().items() if k != secret))
    result = _docker_compose("config", "-q", env_file=env_file)
    assert result.returncode != 0 and secret in result.stderr


def test_secrets_have_no_default_in_compose() -> None:
    for match in VARIABLE.finditer(COMPOSE.read_text()):
        name, modifier = match.group(1), match.group(2) or ""
        if re.search("PASSWORD|TOKEN|SECRET|ROOT_USER|NAS_DIR", name):
            assert modifier.startswith(":?"), f"${{{name}{modifier}}} must have no default"


def test_every_compose_variable_is_in_env_example_with_a_comment() -> None:
    documented = _env_example()
    used = {m.group(1) for m in VARIABLE.finditer(COMPOSE.read_text())}
    assert used <= set(documented), f"missing in .env.example: {sorted(used - set(documented))}"
    lines = ENV_EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line and not line.startswith("#") and "=" in line:
            assert lines[number - 1].startswith("#"), f".env.example:{number + 1} has no comment"


def test_builds_use_targets_of_the_one_dockerfile() -> None:
    services = _compose()["services"]
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert {"ingest", "segmentation", "pnp-counter", "qc-web"} <= set(built)
    targets = set(_stages())
    for build in built.values():
        assert build["context"] == "." and "dockerfile" not in build, build
        assert build["target"] in targets, build
    assert not list(ROOT.glob("services/*/Dockerfile")), "one Dockerfile, at the root"
    assert services["pnp-counter"]["command"] == ["overnight", "worker", "pnp"]


def test_host_ports_are_unique_and_workers_publish_none() -> None:
    services = _compose()["services"]
    host_ports = []
    for name, service in services.items():
        for port in service.get("ports", []):
            host_ports.append(str(port).rsplit(":", 1)[0])
        if name in WORKERS:
            assert "ports" not in service and "container_name" not in service, name
    assert len(host_ports) == len(set(host_ports)), host_ports
    assert not any("container_name" in s for s in services.values())


def test_depends_on_targets_exist_and_can_satisfy_their_condition() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} needs a healthcheck"
            else:
                assert condition == "service_completed_successfully"
                assert services[target].get("restart") == "no", target


def test_service_details() -> None:
    services = _compose()["services"]
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    for name in ("ingest", "qc-web"):
        assert "/healthz" in " ".join(services[name]["healthcheck"]["test"])
    for name in ("ingest", "watcher"):
        (nas,) = [v for v in services[name]["volumes"] if v["target"] == "/data/nas"]
        assert nas["read_only"] is True and nas["source"].startswith("${OVERNIGHT_NAS_DIR:?")
    assert services["watcher"]["command"] == ["overnight", "ingest", "watch"]
    # The watcher serves no port: its own healthcheck reads the loop's heartbeat file.
    heartbeat = services["watcher"]["environment"]["OVERNIGHT_WATCH_HEARTBEAT_FILE"]
    assert heartbeat in " ".join(services["watcher"]["healthcheck"]["test"])
    for name in WORKERS:
        assert "healthcheck" in services[name], name


def _lines() -> list[str]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())  # line continuations
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def _stages() -> dict[str, list[str]]:
    """``{stage name: its lines, FROM first}``."""
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in _lines():
        if line.upper().startswith("FROM "):
            current = []
            stages[line.split()[-1]] = current
        current.append(line)
    return stages


def _stage_chain(name: str) -> list[str]:
    """The stage and its ancestors, nearest first."""
    stages, chain = _stages(), [name]
    while (parent := stages[chain[-1]][0].split()[1]) in stages:
        chain.append(parent)
    return chain


def test_default_base_is_the_official_python_image() -> None:
    args = [line.split(None, 1)[1] for line in _lines() if line.startswith("ARG ")]
    default = dict(arg.split("=", 1) for arg in args if "=" in arg)
    assert default["PYTHON_IMAGE"].startswith("python:3.11-slim"), default


@pytest.mark.parametrize("target", sorted(IMAGE_COMMANDS))
def test_dockerfile_target_is_non_root_and_runs_the_contract(target: str) -> None:
    stages = _stages()
    last_stage = stages[target]
    chain = [line for stage in _stage_chain(target) for line in stages[stage]]
    users = [line.split()[1] for line in last_stage if line.upper().startswith("USER ")]
    assert users, f"{target}: no USER"
    uid = users[-1].split(":")[0]
    assert uid not in {"0", "root"} and int(uid) >= 1000
    assert any("useradd" in line and "10001" in line for line in chain), target
    cmd = [line for line in last_stage if line.upper().startswith("CMD ")]
    assert cmd and yaml.safe_load(cmd[-1][4:]) == IMAGE_COMMANDS[target]
    has_port = any(line.upper().startswith("EXPOSE ") for line in last_stage)
    has_healthcheck = any(line.upper().startswith("HEALTHCHECK ") for line in last_stage)
    assert has_port == has_healthcheck, "a HEALTHCHECK exactly where there is a port"
    if has_healthcheck:
        assert "/healthz" in next(line for line in last_stage if line.startswith("HEALTHCHECK"))
    venv = next(line for line in last_stage if line.startswith("COPY --from="))
    source = _stage_chain(venv.split()[1].split("=", 1)[1])
    installs = " ".join(line for stage in source for line in stages[stage])
    if target in MODEL_FREE:  # no TensorFlow, no models
        assert "models.txt" not in installs and "gpu.txt" not in installs, target
        assert "COPY models/ /opt/overnight/models/" not in last_stage
    else:  # they run the models (and the image Jobs)
        assert f"--requirement {'gpu' if target == 'worker-gpu' else 'models'}.txt" in installs
        assert "COPY models/ /opt/overnight/models/" in last_stage
        assert "ENV OVERNIGHT_MODELS_DIR=/opt/overnight/models" in last_stage


def test_model_free_dependencies_hold_no_tensorflow() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    assert "tensorflow" not in core and "keras" not in core and "kubernetes" not in core
    extras = project["optional-dependencies"]
    assert any(d.startswith("tensorflow-cpu") for d in extras["models"])
    assert any(d.startswith("tensorflow[and-cuda]") for d in extras["gpu"])


def test_dockerignore_keeps_secrets_and_the_venv_out() -> None:
    patterns = (ROOT / ".dockerignore").read_text().splitlines()
    for must in (".git", ".venv", ".env"):
        assert must in patterns
    for needed in ("shared", "services", "models", "pyproject.toml", "requirements.lock"):
        assert needed not in patterns
    assert "!scripts/extras.py" in patterns
