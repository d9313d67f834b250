"""Connecting to Redis, and refusing one that could silently drop queued jobs.

URLs: ``redis://[user:password@]host:port/db`` or ``rediss://`` for TLS (redis-py reads the
password, ACL user name and TLS options such as ``ssl_cert_reqs`` from the URL).
"""

from __future__ import annotations

import logging

import redis
from redis import Redis

from overnight.errors import ConfigError, TransientError

logger = logging.getLogger(__name__)

#: The only eviction policy that cannot throw queue data away.
REQUIRED_MAXMEMORY_POLICY = "noeviction"
#: Errors redis-py raises when the server is down or slow: worth retrying.
REDIS_TRANSIENT_ERRORS: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)


def connect(url: str, *, socket_timeout_s: float = 30.0) -> Redis:
    """A Redis client for ``url`` (nothing is sent until the first command)."""
    try:
        return Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=10.0,
            health_check_interval=30,
            retry_on_timeout=True,
        )
    except ValueError as err:
        raise ConfigError(
            f"OVERNIGHT_REDIS_URL {redact_url(url)!r} is not a Redis URL: {err}"
        ) from err


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def check_redis(client: Redis) -> None:
    """Check that Redis answers and never evicts keys; raise with what to change otherwise.

    Raises
    ------
    TransientError
        Redis cannot be reached (or refuses the credentials).
    ConfigError
        ``maxmemory-policy`` is anything but ``noeviction``: under memory pressure Redis would
        delete queued jobs and their state without telling anyone.
    """
    where = _describe(client)
    try:
        client.ping()
        policy = _maxmemory_policy(client)
    except redis.AuthenticationError as err:
        raise ConfigError(f"Redis at {where} refused the credentials: {err}") from err
    except REDIS_TRANSIENT_ERRORS as err:
        raise TransientError(f"cannot reach Redis at {where}: {err}") from err
    if policy is not None and policy != REQUIRED_MAXMEMORY_POLICY:
        raise ConfigError(
            f"Redis at {where} has maxmemory-policy {policy!r}: it may evict queued jobs. "
            f"Set 'maxmemory-policy {REQUIRED_MAXMEMORY_POLICY}' (redis.conf or "
            f"CONFIG SET maxmemory-policy {REQUIRED_MAXMEMORY_POLICY}) and start again."
        )
    logger.debug("Redis at %s is usable (maxmemory-policy %s)", where, policy)


def _maxmemory_policy(client: Redis) -> str | None:
    """The server's eviction policy; None when CONFIG is not allowed (managed Redis)."""
    try:
        value = client.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.ResponseError:
        info = client.info("memory")
        value = info.get("maxmemory_policy")
    if value is None:
        logger.warning("cannot read Redis maxmemory-policy; make sure it is noeviction")
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _describe(client: Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
