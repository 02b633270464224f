"""The app's Redis clients, built once per process from settings."""

from __future__ import annotations

from functools import cache
from typing import Any

import redis
from django.conf import settings

from .connections import client_from_url


def redis_client(url: str, **kwargs: Any) -> redis.Redis:
    """A client for one of the REDIS_*_URL settings, over TLS (settings.REDIS_TLS)
    when the URL is rediss://."""
    return client_from_url(url, settings.REDIS_TLS, **kwargs)


@cache
def app_redis() -> redis.Redis:
    """Client for REDIS_APP_URL (ACL user app_data). Safe to share across
    threads; redis-py resets its pool after fork."""
    return redis_client(settings.REDIS_APP_URL)


def server_version(client: redis.Redis) -> tuple[int, int, int]:
    """The server's version from HELLO (allowed to every user, unlike INFO)."""
    # HELLO with the connection's own protocol: Redis 6.0 needs the argument,
    # and another number would switch the connection's protocol.
    protocol = client.connection_pool.connection_kwargs.get("protocol") or 2
    reply = client.execute_command("HELLO", str(protocol))
    if isinstance(reply, list):  # RESP2: flat key/value list
        reply = dict(zip(reply[::2], reply[1::2], strict=False))
    version = reply.get("version") or reply.get(b"version") or "0.0.0"
    if isinstance(version, bytes):
        version = version.decode()
    parts = [int(p) for p in version.split(".")[:3] if p.isdigit()]
    major, minor, patch = [*parts, 0, 0, 0][:3]
    return major, minor, patch
