"""docker-compose.yml, .env.example and the service Dockerfiles.

No Docker engine runs here: ``docker-compose config`` validates the file (unknown keys,
interpolation, missing secrets) and the rest is checked by parsing.
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
SERVICE_DIRS = ("ingest", "segmentation", "pnp-counter", "qc-web", "dispatcher")
#: The contract: the command each service image runs.
IMAGE_COMMANDS = {
    "ingest": ["overnight", "ingest", "serve", "--host", "0.0.0.0", "--port", "8000"],
    "segmentation": ["overnight", "worker", "segmentation"],
    "pnp-counter": ["overnight", "worker", "pnp"],
    "qc-web": ["overnight", "qc-web", "--host", "0.0.0.0", "--port", "8080"],
    "dispatcher": ["overnight", "dispatch", "run"],
}
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


def test_builds_point_at_existing_dockerfiles_from_the_repo_root() -> None:
    services = _compose()["services"]
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert {"ingest", "segmentation", "pnp-counter", "qc-web"} <= set(built)
    for build in built.values():
        assert build["context"] == "."
        assert (ROOT / build["dockerfile"]).is_file(), build


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


def _dockerfile(service: str) -> list[str]:
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)  # line continuations
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


@pytest.mark.parametrize("service", SERVICE_DIRS)
def test_dockerfile_is_multi_stage_non_root_and_runs_the_contract(service: str) -> None:
    lines = _dockerfile(service)
    froms = [line for line in lines if line.upper().startswith("FROM ")]
    assert len(froms) >= 2, "multi-stage: a builder and a runtime stage"
    args = dict(
        line.split(None, 1)[1].split("=", 1) for line in lines if line.upper().startswith("ARG ")
    )
    runtime_base = froms[-1].split()[1]
    runtime_base = args.get(runtime_base.strip("${}"), runtime_base)
    assert runtime_base.startswith("python:3.11-slim"), runtime_base
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users, "no USER"
    uid = users[-1].split(":")[0]
    assert uid not in {"0", "root"} and int(uid) >= 1000
    last_stage = lines[lines.index(froms[-1]) :]
    cmd = [line for line in last_stage if line.upper().startswith("CMD ")]
    assert cmd and yaml.safe_load(cmd[-1][4:]) == IMAGE_COMMANDS[service]
    has_port = any(line.upper().startswith("EXPOSE ") for line in last_stage)
    has_healthcheck = any(line.upper().startswith("HEALTHCHECK ") for line in last_stage)
    assert has_port == has_healthcheck, "a HEALTHCHECK exactly where there is a port"
    if has_healthcheck:
        assert "/healthz" in next(line for line in last_stage if line.startswith("HEALTHCHECK"))
    if service in {"segmentation", "pnp-counter"}:  # they run the models (and the image Jobs)
        assert "COPY models/ /opt/overnight/models/" in last_stage
        assert "ENV OVERNIGHT_MODELS_DIR=/opt/overnight/models" in last_stage


def test_dockerignore_keeps_secrets_and_the_venv_out() -> None:
    patterns = (ROOT / ".dockerignore").read_text().splitlines()
    for must in (".git", ".venv", ".env"):
        assert must in patterns
    for needed in ("shared", "services", "pyproject.toml", "requirements.lock"):
        assert needed not in patterns
