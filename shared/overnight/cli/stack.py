"""``overnight stack``: the whole system as local processes, supervised, stopped cleanly.

The process supervisor of every service, so it sits with the command line (the composition
root), not inside one of the services it starts.

Starts, in order: ``redis-server`` from PATH (unless ``OVERNIGHT_REDIS_URL`` is set) with
append-only persistence in ``<data>/redis``; the ingest API; the watcher (when
``OVERNIGHT_WATCH_SOURCES`` is set); the QC web (when installed, unless its port is 0); N
segmentation and N pnp-counter workers. A child that
dies is started again, forever (like ``restart: unless-stopped`` in compose), Redis included;
one that keeps dying within seconds waits longer each time (1, 2, 4 … up to 60 s), so a
worker that dies while Redis is down comes back once Redis is. The stack refuses to start its
own Redis on a port something else already listens on (someone else's Redis, with their data).
SIGTERM or Ctrl-C stops the workers and the API with SIGTERM (a worker finishes its job
first; after ``grace_s`` it is killed — its job is re-queued by the others' upkeep on the
next start), then Redis.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from overnight.cli.main import service
from overnight.cli.services import INGEST_CONFIG, _settings, _stop_event
from overnight.errors import ConfigError, OvernightError
from overnight.jobs.connection import REDIS_TRANSIENT_ERRORS, connect

logger = logging.getLogger(__name__)

#: Seconds a child may take to stop after SIGTERM before it is killed.
DEFAULT_GRACE_S = 30.0
#: A child that dies sooner than this after starting counts a quick death: its restart waits.
_MIN_UPTIME_S = 5.0
#: Back-off after quick deaths (s): the first, doubled each time, at most the last.
RESTART_BACKOFF_S = 1.0
RESTART_BACKOFF_MAX_S = 60.0


@dataclass
class Child:
    """One supervised process: its name, command and the running ``Popen``."""

    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    #: When a dead child may be started again (epoch s); 0: as soon as it is seen dead.
    restart_at: float = 0.0

    def start(self, env: dict[str, str]) -> None:
        """Start (or restart) the process in its own process group."""
        self.process = subprocess.Popen(self.argv, env=env, start_new_session=True)
        self.started_at = time.time()
        logger.info("started %s (pid %d)", self.name, self.process.pid)

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.process is not None and self.process.poll() is None


@dataclass
class StackConfig:
    """What to start: workers of each kind, API port, Redis (own or given), data folder."""

    workers: int = 1
    port: int = 8000
    host: str = "127.0.0.1"
    redis_port: int = 6379
    qc_port: int = 8080
    data_dir: Path = Path("overnight-stack")
    watch: bool = True
    grace_s: float = DEFAULT_GRACE_S
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))


class Stack:
    """Starts the children of a :class:`StackConfig`, keeps them running, stops them."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.env = dict(config.env)
        self.redis: Child | None = None
        self.children: list[Child] = []
        self.stopping = threading.Event()

    def start(self) -> None:
        """Start Redis (if needed) and every service; fill in the token and Redis URL."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.env.get("OVERNIGHT_REDIS_URL"):
            self._start_redis()
        if not (self.env.get("OVERNIGHT_API_TOKEN") or self.env.get("OVERNIGHT_API_TOKEN_FILE")):
            token_file = self.config.data_dir / "api-token"
            if not token_file.exists():
                token_file.write_text(secrets.token_urlsafe(24) + "\n", encoding="utf-8")
                token_file.chmod(0o600)
            self.env["OVERNIGHT_API_TOKEN"] = token_file.read_text(encoding="utf-8").strip()
            logger.info("API token in %s", token_file)
        cli = overnight_command()
        self.children.append(
            Child(
                "ingest",
                [
                    *cli,
                    "ingest",
                    "serve",
                    "--host",
                    self.config.host,
                    "--port",
                    str(self.config.port),
                ],
            )
        )
        if self.config.watch and self.env.get("OVERNIGHT_WATCH_SOURCES"):
            self.children.append(Child("watcher", [*cli, "ingest", "watch"]))
        if self.config.qc_port and importlib.util.find_spec("overnight.cli.qcweb") is not None:
            self.env.setdefault("OVERNIGHT_INGEST_URL", f"http://127.0.0.1:{self.config.port}")
            qc = [*cli, "qc-web", "--host", self.config.host, "--port", str(self.config.qc_port)]
            self.children.append(Child("qc-web", qc))
        for kind in ("segmentation", "pnp"):
            for index in range(self.config.workers):
                self.children.append(Child(f"{kind}-{index + 1}", [*cli, "worker", kind]))
        for child in self.children:
            child.start(self.env)

    def supervise(self, poll_s: float = 0.5) -> None:
        """Restart children that die, until :meth:`stop` is asked for."""
        while not self.stopping.wait(poll_s):
            self.supervise_once()

    def supervise_once(self, now: float | None = None) -> list[str]:
        """Restart every dead child whose back-off is over (Redis first); return their names."""
        now = time.time() if now is None else now
        restarted = []
        for child in [c for c in (self.redis, *self.children) if c is not None]:
            if child.alive() or self.stopping.is_set():
                continue
            if child.restart_at == 0.0:  # seen dead now: decide when it comes back
                code = child.process.returncode if child.process else None
                quick = now - child.started_at < _MIN_UPTIME_S
                child.quick_deaths = child.quick_deaths + 1 if quick else 0
                delay = restart_delay_s(child.quick_deaths)
                child.restart_at = now + delay
                log = logger.error if child.quick_deaths > 1 else logger.warning
                log("%s exited with %s; restarting in %.0f s", child.name, code, delay)
            if now < child.restart_at:
                continue
            try:
                if child is self.redis:
                    _check_port_free(self.config.redis_port)
                child.start(self.env)
            except (ConfigError, OSError) as err:
                child.restart_at = now + restart_delay_s(child.quick_deaths + 1)
                logger.error("cannot restart %s: %s", child.name, err)
                continue
            child.restart_at = 0.0
            restarted.append(child.name)
        return restarted

    def stop(self) -> None:
        """SIGTERM every service, wait up to ``grace_s``, kill what is left, then stop Redis."""
        self.stopping.set()
        _terminate(self.children, self.config.grace_s)
        if self.redis is not None:
            _terminate([self.redis], self.config.grace_s)

    def _start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigError("redis-server is not on PATH: install it or set OVERNIGHT_REDIS_URL")
        _check_port_free(self.config.redis_port)
        folder = self.config.data_dir / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        self.redis = Child(
            "redis",
            [
                binary,
                "--port",
                str(self.config.redis_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(folder.absolute()),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
            ],
        )
        self.redis.start(self.env)
        url = f"redis://127.0.0.1:{self.config.redis_port}/0"
        _wait_for_redis(url, self.redis)
        self.env["OVERNIGHT_REDIS_URL"] = url


def overnight_command() -> list[str]:
    """The ``overnight`` entry point of this Python environment (the venv's, not PATH's)."""
    script = Path(sys.executable).with_name("overnight")
    return [str(script)] if script.exists() else ["overnight"]


def restart_delay_s(quick_deaths: int) -> float:
    """Wait before restarting a child after ``quick_deaths`` quick deaths in a row (s).

    >>> [restart_delay_s(n) for n in (0, 1, 2, 3, 10)]
    [0.0, 0.0, 1.0, 2.0, 60.0]
    """
    if quick_deaths <= 1:
        return 0.0
    return min(RESTART_BACKOFF_MAX_S, RESTART_BACKOFF_S * 2 ** (quick_deaths - 2))


def _check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Refuse, loudly, to start our Redis where something already listens (someone else's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        taken = probe.connect_ex((host, port)) == 0
    if taken:
        raise ConfigError(
            f"port {port} on {host} is already taken (another Redis, with someone else's data?); "
            "overnight stack starts its own redis-server: give it a free port with --redis-port, "
            "or set OVERNIGHT_REDIS_URL to use that server on purpose"
        )


def _wait_for_redis(url: str, child: Child, timeout_s: float = 20.0) -> None:
    client = connect(url, socket_timeout_s=1.0)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if not child.alive():
            raise ConfigError(
                f"redis-server exited at start (port in use?): {' '.join(child.argv)}"
            )
        try:
            client.ping()
            return
        except REDIS_TRANSIENT_ERRORS:
            time.sleep(0.1)
    raise ConfigError(f"redis-server did not answer on {url} within {timeout_s:.0f} s")


def _terminate(children: list[Child], grace_s: float) -> None:
    running = [c for c in children if c.alive()]
    for child in running:
        assert child.process is not None
        try:
            os.killpg(child.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.time() + grace_s
    for child in running:
        assert child.process is not None
        try:
            child.process.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.0f s; killing it", child.name, grace_s)
            try:
                os.killpg(child.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.process.wait()
        logger.info("stopped %s", child.name)


@click.command()
@click.option("--workers", type=int, default=1, show_default=True, help="Workers of each kind.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port of the ingest API.")
@click.option(
    "--redis-port",
    type=int,
    default=6379,
    show_default=True,
    help="Port of the redis-server started here (ignored with OVERNIGHT_REDIS_URL).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("overnight-stack"),
    show_default=True,
    help="Redis persistence and the generated API token.",
)
@click.option(
    "--qc-port", type=int, default=8080, show_default=True, help="QC web port; 0: do not start it."
)
@click.pass_context
def stack(
    ctx: click.Context, workers: int, port: int, redis_port: int, data_dir: Path, qc_port: int
) -> None:
    """Run Redis, the ingest API, the watcher and N workers of each kind; Ctrl-C stops all."""
    settings = _settings(ctx, service(INGEST_CONFIG).IngestSettings)
    config = StackConfig(
        workers=workers,
        port=port,
        host=settings.host,
        redis_port=redis_port,
        qc_port=qc_port,
        data_dir=data_dir,
    )
    running = Stack(config)
    stop = _stop_event()
    try:
        running.start()
        click.echo(
            f"ingest API on http://{settings.host}:{port} (docs at /docs); Ctrl-C stops everything"
        )
        watcher = threading.Thread(target=running.supervise, daemon=True)
        watcher.start()
        stop.wait()
    except OvernightError as err:
        raise click.ClickException(str(err)) from err
    finally:
        click.echo("stopping…")
        running.stop()
