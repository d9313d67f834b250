"""``overnight stack`` supervision (issue 13): restart forever with back-off, own Redis only."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from overnight.cli.stack import Child, Stack, StackConfig, restart_delay_s
from overnight.errors import ConfigError


def _dies_at_once() -> Child:
    return Child("flaky", [sys.executable, "-c", "raise SystemExit(3)"])


def _wait_dead(child: Child) -> None:
    assert child.process is not None
    child.process.wait(timeout=30)


def test_a_child_that_keeps_dying_is_restarted_forever_with_back_off(tmp_path: Path) -> None:
    """Issue 13 #6: 5 quick deaths (Redis down) used to stop the restarts for good."""
    stack = Stack(StackConfig(data_dir=tmp_path))
    child = _dies_at_once()
    stack.children.append(child)
    child.start(stack.env)
    now = child.started_at
    delays = []
    for _ in range(12):
        _wait_dead(child)
        restarted = stack.supervise_once(now)
        delay = 0.0
        if not restarted:  # waiting out its back-off
            delay = child.restart_at - now
            assert stack.supervise_once(now + delay / 2) == []
            now = child.restart_at
            restarted = stack.supervise_once(now)
        assert restarted == ["flaky"]
        delays.append(delay)
        child.started_at = now  # it died at once again (the test's clock)
    assert delays[:5] == [0.0, 1.0, 2.0, 4.0, 8.0] and max(delays) == 60.0
    _wait_dead(child)


def test_the_back_off_grows_and_is_capped() -> None:
    assert [restart_delay_s(n) for n in range(1, 6)] == [0.0, 1.0, 2.0, 4.0, 8.0]
    assert restart_delay_s(100) == 60.0


def test_a_dead_redis_is_restarted_too(tmp_path: Path) -> None:
    stack = Stack(StackConfig(data_dir=tmp_path))
    stack.redis = Child("redis", [sys.executable, "-c", "raise SystemExit(3)"])
    stack.redis.start(stack.env)
    _wait_dead(stack.redis)
    stack.config.redis_port = _free_port()
    assert stack.supervise_once(time.time() + 10) == ["redis"]
    _wait_dead(stack.redis)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_taken_redis_port_is_refused_loudly(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        stack = Stack(
            StackConfig(data_dir=tmp_path, redis_port=port, env={"PATH": "/usr/bin:/bin"})
        )
        with pytest.raises(ConfigError, match=f"port {port} .* already taken"):
            stack._start_redis()
        assert stack.redis is None
