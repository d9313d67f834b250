"""The Redis command lines we ship (compose and chart) start a real redis-server as intended."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import helm_python
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cretredispw"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _compose_args() -> list[str]:
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["redis"][
        "command"
    ]
    return [PASSWORD if "REDIS_PASSWORD" in a else a for a in command[1:]]


def _chart_args() -> list[str]:
    values = {
        "auth": {"apiToken": "t"},
        "redis": {"auth": {"password": PASSWORD}},
        "minio": {"auth": {"rootPassword": "minio-pass"}},
    }
    with helm_python.Chart.load(str(ROOT / "helm" / "overnight")) as chart:
        text = chart.render(values, name="lab", namespace="ns")["overnight/templates/redis.yaml"]
    statefulset = next(d for d in yaml.safe_load_all(text) if d and d["kind"] == "StatefulSet")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    return [PASSWORD if a == "$(REDIS_PASSWORD)" else a for a in container["args"]]


@pytest.fixture(params=["compose", "chart"])
def redis_cli(request, tmp_path: Path) -> Iterator[list[str]]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: run scripts/system-deps.sh (make test does)")
    args = _compose_args() if request.param == "compose" else _chart_args()
    args = [a if a != "/data" else str(tmp_path) for a in args]  # the chart's --dir
    port = _free_port()
    process = subprocess.Popen(
        [server, *args, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cli = ["redis-cli", "-p", str(port)]
    env = {**os.environ, "REDISCLI_AUTH": PASSWORD}
    deadline = time.monotonic() + 10
    while (
        subprocess.run([*cli, "ping"], env=env, capture_output=True, text=True).stdout.strip()
        != "PONG"
    ):
        assert process.poll() is None, "redis-server exited: its arguments are invalid"
        assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
        time.sleep(0.05)
    try:
        yield cli
    finally:
        subprocess.run([*cli, "shutdown", "nosave"], env=env, capture_output=True, check=False)
        process.wait(timeout=10)


def _config(cli: list[str], name: str, password: str | None = PASSWORD) -> str:
    env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
    if password is not None:
        env["REDISCLI_AUTH"] = password
    result = subprocess.run([*cli, "config", "get", name], env=env, capture_output=True, text=True)
    return result.stdout.strip()


def test_redis_runs_with_noeviction_aof_and_a_password(redis_cli: list[str]) -> None:
    assert _config(redis_cli, "maxmemory-policy").splitlines()[-1] == "noeviction"
    assert _config(redis_cli, "appendonly").splitlines()[-1] == "yes"
    assert "NOAUTH" in _config(redis_cli, "appendonly", password=None)
