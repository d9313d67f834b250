from pathlib import Path

import pytest

from fixtures_redis import RedisServer, free_port
from overnight.errors import ConfigError, TransientError
from overnight.jobs.connection import check_redis, connect, redact_url


def test_a_plain_redis_passes(redis_server: RedisServer) -> None:
    check_redis(connect(redis_server.url))


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl"])
def test_an_evicting_redis_is_refused_with_what_to_change(
    redis_server: RedisServer, policy: str
) -> None:
    redis_server.client().config_set("maxmemory-policy", policy)
    with pytest.raises(ConfigError, match=f"maxmemory-policy '{policy}'.*noeviction"):
        check_redis(connect(redis_server.url))


def test_an_unreachable_redis_is_transient() -> None:
    with pytest.raises(TransientError, match="cannot reach Redis"):
        check_redis(connect(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=1))


def test_password_and_acl_user_in_the_url(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r", extra_args=("--requirepass", "s3cret-pass"))
    server.start()
    try:
        check_redis(connect(f"redis://:s3cret-pass@127.0.0.1:{server.port}/0"))
        with pytest.raises(ConfigError, match="refused the credentials"):
            check_redis(connect(f"redis://:wrong@127.0.0.1:{server.port}/0"))
        server.client().acl_setuser(
            "worker", enabled=True, passwords=["+w0rker-pass"], keys=["*"], commands=["+@all"]
        )
        check_redis(connect(f"redis://worker:w0rker-pass@127.0.0.1:{server.port}/0"))
    finally:
        server.stop()


def test_tls_urls_use_an_ssl_connection() -> None:
    client = connect("rediss://:pw@redis.example:6380/0?ssl_cert_reqs=required")
    assert client.connection_pool.connection_class.__name__ == "SSLConnection"


def test_passwords_never_reach_messages() -> None:
    assert redact_url("redis://user:pw@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"
