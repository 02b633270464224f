"""One URL per purpose; Sentinel URLs accepted wherever a plain one is."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from kombu import Connection

from redisops import connections
from redisops.tests.redis_proc import REDIS_SERVER, RedisProcess, free_port, password


def test_parse_plain_url() -> None:
    t = connections.parse_redis_url("redis://app_data:p%40ss@h:6380/2")
    assert (t.scheme, t.username, t.password, t.db) == ("redis", "app_data", "p@ss", 2)
    assert not t.is_sentinel


def test_parse_sentinel_url_both_forms() -> None:
    ours = connections.parse_redis_url(
        "sentinel://u:pw@s1:26379,s2:26380/1?master_name=main&sentinel_password=sp"
    )
    celery = connections.parse_redis_url(
        "sentinel://u:pw@s1:26379/1;sentinel://u:pw@s2:26380/1?master_name=main"
    )
    for t in (ours, celery):
        assert t.sentinels == (("s1", 26379), ("s2", 26380))
        assert (t.master_name, t.username, t.password, t.db) == ("main", "u", "pw", 1)
    assert ours.sentinel_kwargs == {"password": "sp"}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        ("http://x", "scheme"),
        ("sentinel://s1:26379/0", "master_name"),
        ("redis://h/notanumber", "number"),
        ("redis://h/\u00b2", "number"),  # "²".isdigit() is True
        ("unix:///tmp/r.sock?db=\u0665", "number"),  # Arabic-Indic five
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        connections.parse_redis_url(url)


def test_celery_and_cache_settings_for_sentinel() -> None:
    url = "sentinel://u:pw@s1:26379,s2:26380/0?master_name=main"
    broker, options = connections.celery_url_and_options(url, "broker:")
    assert broker == "sentinel://u:pw@s1:26379/0;sentinel://u:pw@s2:26380/0"
    timeouts = connections.SENTINEL_CLIENT_DEFAULTS
    assert options == {
        "global_keyprefix": "broker:",
        "master_name": "main",
        "sentinel_kwargs": timeouts,
    }
    cache = connections.django_cache_config(url, "cache")
    assert cache["LOCATION"] == "redis://u:pw@main/0"
    assert cache["OPTIONS"]["SENTINELS"] == [("s1", 26379), ("s2", 26380)]
    assert cache["OPTIONS"]["SENTINEL_KWARGS"] == timeouts
    # The Sentinel's credentials join the timeouts, never replace them.
    with_password = f"{url}&sentinel_username=client&sentinel_password=sp"
    _, options = connections.celery_url_and_options(with_password, "broker:")
    assert options["sentinel_kwargs"] == {
        **timeouts,
        "username": "client",
        "password": "sp",
    }


def test_redacted_hides_passwords() -> None:
    url = "sentinel://u:secret@a:1/0;sentinel://u:secret@b:2/0"
    assert "secret" not in connections.redacted(url)


@pytest.fixture
def sentinel(redis_server: RedisProcess, tmp_path: Path):
    """A real redis-sentinel watching the test server as master 'main'."""
    import subprocess
    import time

    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor main 127.0.0.1 {redis_server.port} 1\n"
        "sentinel auth-user main test_admin\n"
        f"sentinel auth-pass main {password('test_admin')}\n"
    )
    proc = subprocess.Popen([REDIS_SERVER, str(conf), "--sentinel"])  # noqa: S603 - our redis-server
    try:
        s = redis.Redis(port=port, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                if s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "main"):
                    break
            except redis.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() >= deadline:
                pytest.fail(f"redis-sentinel on port {port} did not come up")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_sentinel_url_reaches_the_master_as_the_acl_user(sentinel: int) -> None:
    url = f"sentinel://app_data:{password('app_data')}@127.0.0.1:{sentinel}/0?master_name=main"
    client = connections.client_from_url(url)
    assert client.set("app:sentinel-test", "1", ex=10)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.set("broker:x", "1")  # logged in as app_data, not admin


def test_celery_broker_connects_through_sentinel(sentinel: int) -> None:
    url = (
        f"sentinel://app_broker:{password('app_broker')}@127.0.0.1:{sentinel}/0"
        "?master_name=main"
    )
    broker_url, options = connections.celery_url_and_options(url, "broker:")
    with Connection(broker_url, transport_options=options) as conn:
        conn.ensure_connection(max_retries=1)
        queue = conn.SimpleQueue("sentinel-test")
        queue.put({"ok": 1})
        assert queue.get(timeout=5).payload == {"ok": 1}
        queue.close()


def sentinel_url(user: str, port: int) -> str:
    return f"sentinel://{user}:{password(user)}@127.0.0.1:{port}/0?master_name=main"


def test_django_cache_works_through_sentinel(
    sentinel: int, admin_redis: redis.Redis, uid: str
) -> None:
    from django_redis.cache import RedisCache

    config = connections.django_cache_config(
        sentinel_url("app_cache", sentinel), "cache"
    )
    # Errors must surface here, not be ignored as misses.
    options = {**config["OPTIONS"], "IGNORE_EXCEPTIONS": False}
    cache = RedisCache(
        config["LOCATION"], {"KEY_PREFIX": config["KEY_PREFIX"], "OPTIONS": options}
    )
    cache.set(f"s-{uid}", {"n": 1}, timeout=10)
    assert cache.get(f"s-{uid}") == {"n": 1}
    assert admin_redis.exists(f"cache:1:s-{uid}")  # the cache user's prefix
    cache.delete(f"s-{uid}")


def test_celery_result_backend_works_through_sentinel(
    sentinel: int, admin_redis: redis.Redis, uid: str
) -> None:
    from celery import Celery

    url, options = connections.celery_url_and_options(
        sentinel_url("app_results", sentinel), "results:"
    )
    app = Celery("sentinel-test", set_as_current=False)
    app.conf.update(result_backend=url, result_backend_transport_options=options)
    try:
        app.backend.store_result(f"t-{uid}", {"answer": 42}, "SUCCESS")
        meta = app.backend.get_task_meta(f"t-{uid}")
        assert meta["status"] == "SUCCESS"
        assert meta["result"] == {"answer": 42}
        assert admin_redis.exists(f"results:celery-task-meta-t-{uid}")
    finally:
        app.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_server_version_through_hello_keeps_the_protocol(
    redis_server: RedisProcess, protocol: int
) -> None:
    """HELLO with the connection's protocol number: Redis 6.0 refuses a bare
    HELLO, and another number would switch the connection's protocol."""
    from redisops.clients import server_version
    from redisops.tests.redis_proc import server_version as installed_version

    client = redis.Redis(
        port=redis_server.port,
        username="app_data",
        password=password("app_data"),
        protocol=protocol,
    )
    assert server_version(client)[:2] == installed_version()
    assert str(client.client_info()["resp"]) == str(protocol)  # still the same
