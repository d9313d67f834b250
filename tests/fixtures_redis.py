"""Real servers and processes for the queue and service tests (imported by their conftests).

- :class:`RedisServer`: a ``redis-server`` on a free port of 127.0.0.1, optionally with
  append-only persistence (for the restart scenario); stopped with SHUTDOWN.
- the S3 server (``s3_endpoint``) is in ``tests/conftest.py``, shared by the whole suite.
- :class:`ServiceProcess`: an ``overnight`` subcommand (worker, API, watcher) as a real
  subprocess in its own process group, so SIGKILL takes down everything it started.
- :func:`wait_for`: poll a condition until a deadline (never a fixed sleep).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import redis

T = TypeVar("T")

#: Token the API tests use (≥ 16 characters, as the service requires).
API_TOKEN = "test-token-0123456789abcdef"
#: Headers of an authorised write.
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
#: Upload cap of the test API (bytes): one 256² test image (~2.6 MB) fits, 4 MB does not.
UPLOAD_CAP_BYTES = 3_000_000


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.05
) -> T:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


class RedisServer:
    """A ``redis-server`` on a free port (``persistent``: an append-only file in ``folder``)."""

    def __init__(
        self, folder: Path, *, persistent: bool = False, extra_args: tuple[str, ...] = ()
    ) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed (make system-deps)")
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.persistent = persistent
        self.extra_args = extra_args
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers."""
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        subprocess.run(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "yes",
                "--save",
                "",
                *persistence,
                "--dir",
                str(self.folder),
                "--pidfile",
                str(self.folder / "redis.pid"),
                "--logfile",
                str(self.folder / "redis.log"),
                *self.extra_args,
            ],
            check=True,
        )
        client = self.client()
        wait_for(lambda: _pings(client), 10, f"redis-server on port {self.port}")

    def stop(self) -> None:
        """Shut the server down (saving nothing beyond its append-only file) and wait for it."""
        client = self.client()
        try:
            client.shutdown(nosave=not self.persistent)
        except redis.ConnectionError:
            pass  # the server closes the connection as it goes
        wait_for(lambda: not _pings(client), 10, f"redis-server on port {self.port} to stop")

    def client(self) -> redis.Redis:
        """A client for this server (authenticated when ``password`` is set)."""
        return redis.Redis.from_url(self.url, socket_timeout=5, password=self.password)

    @property
    def password(self) -> str | None:
        """The ``--requirepass`` value among the extra arguments, if any."""
        args = list(self.extra_args)
        return args[args.index("--requirepass") + 1] if "--requirepass" in args else None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server without persistence for one test."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def overnight_argv(*args: str) -> list[str]:
    """The ``overnight`` command of this interpreter's environment, with ``args``."""
    script = Path(sys.executable).with_name("overnight")
    return (
        [str(script), *args]
        if script.exists()
        else [sys.executable, "-m", "overnight.cli.main", *args]
    )


class ServiceProcess:
    """An ``overnight`` subcommand running as a subprocess (its output goes to ``log``)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        """Start it in a new process group."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                overnight_argv(*self.args),
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        """Process id (of the group leader)."""
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """Whether it runs."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it."""
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self, timeout_s: float = 20) -> int:
        """SIGTERM, wait (SIGKILL after ``timeout_s``); return the exit status."""
        assert self.process is not None
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.process.returncode)

    def output(self) -> str:
        """What it printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Callable[[list[str], dict[str, str]], ServiceProcess]]:
    """Start ``overnight`` subprocesses; every one still running is killed after the test."""
    started: list[ServiceProcess] = []

    def start(args: list[str], env: dict[str, str]) -> ServiceProcess:
        name = "-".join(args[:2])
        process = ServiceProcess(args, env, tmp_path / f"{name}-{len(started)}.log").start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def service_env(**settings: str) -> dict[str, str]:
    """This environment with ``OVERNIGHT_<NAME>`` set for each keyword (names in lower case)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVERNIGHT_")}
    env.update({f"OVERNIGHT_{name.upper()}": value for name, value in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def fill_plate(folder: Path, images: list[Path], n: int) -> list[Path]:
    """``n`` images in ``folder``, copies of ``images`` under distinct names."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(n):
        target = folder / f"field_{index:03d}.tif"
        shutil.copy(images[index % len(images)], target)
        written.append(target)
    return written
