"""TLS from the app to Redis, against a real redis-server that serves TLS only
(``port 0``), verifies client certificates (``tls-auth-clients yes``) and has
the app's ACL users: each purpose (broker, results, cache, app data, Pub/Sub,
the storage budget) connects with the CA verified, as production settings
build it, and nothing connects without the CA or the client certificate.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redisops import redis_acl
from redisops.connections import RedisTls, client_from_url
from redisops.tests.redis_proc import RedisProcess, free_port, password
from redisops.tests.test_settings import PRODUCTION_ENV, run_manage
from redisops.tests.tls_pki import make_pki


class TlsRedis(RedisProcess):
    """redis-server with TLS only on 127.0.0.1:<port>, client certificates
    required, the default user off and the users of redisops.redis_acl
    (RedisProcess with the certificates of ``folder``)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(free_port(), folder, maxmemory="64mb", pki=folder)
        self.folder = folder

    def tls(self, ca: str = "ca", client: bool = True) -> RedisTls:
        f = self.folder
        if not client:
            return RedisTls(str(f / f"{ca}.crt"))
        return RedisTls(
            str(f / f"{ca}.crt"), str(f / "client.crt"), str(f / "client.key")
        )

    def url(self, user: str | None = "app_data", host: str = "localhost") -> str:
        return f"rediss://{user}:{password(user or '')}@{host}:{self.port}/0"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    folder = tmp_path_factory.mktemp("tls-redis")
    make_pki(folder)
    server = TlsRedis(folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def tls_env(server: TlsRedis, process: str, **extra: str) -> dict[str, str]:
    """Production settings for ``process``: its users' rediss:// URLs only, the CA
    and the client certificate."""
    env = {
        k: v
        for k, v in PRODUCTION_ENV.items()
        if not k.startswith("REDIS_") or k == "REDIS_TLS"
    }
    env.update(
        APP_PROCESS=process,
        REDIS_TLS_CA_FILE=str(server.folder / "ca.crt"),
        REDIS_TLS_CERT_FILE=str(server.folder / "client.crt"),
        REDIS_TLS_KEY_FILE=str(server.folder / "client.key"),
        DJANGO_STATE_DIR=str(server.folder),
    )
    for user in redis_acl.process_users(process):
        env[user.env] = server.url(user.name)
    env.update(extra)
    return env


def shell_json(code: str, env: dict[str, str]) -> object:
    result = run_manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


# Every connection of the web process, through the settings' own clients.
EVERY_PURPOSE = """
import json, uuid
from django.conf import settings as s
from django.core.cache import cache
from config.celery_app import app
from redisops import app_status
from redisops.clients import app_redis, redis_client
from redisops.storage_budget import check_storage_budget
out = {}
waiting, unacked = app_status.broker_counts(app, ["default"])
out["broker"] = waiting
tid = str(uuid.uuid4())
app.backend.store_result(tid, 42, "SUCCESS")
out["results"] = app.AsyncResult(tid).get(timeout=5)
cache.set("tls-check", "cached")
out["cache"] = cache.get("tls-check")
out["app"] = app_redis().ping()
sub = redis_client(s.REDIS_APP_URL).pubsub()
sub.subscribe("app:events:tls")
out["publish"] = app_redis().publish("app:events:tls", "x")
out["budget"] = check_storage_budget("tls").maxmemory
out["tls"] = sorted(type(c).__name__ for c in [
    app_redis().connection_pool.get_connection(),
])
print(json.dumps(out))
"""


def test_every_purpose_of_the_web_connects_over_verified_tls(
    tls_redis: TlsRedis,
) -> None:
    out = shell_json(EVERY_PURPOSE, tls_env(tls_redis, "web"))
    assert out == {
        "broker": {"default": 0},
        "results": 42,
        "cache": "cached",
        "app": True,
        "publish": 1,
        "budget": 64 * 1024 * 1024,
        "tls": ["SSLConnection"],
    }


EFFECTIVE = """
import json, ssl
from django.conf import settings as s
from config.celery_app import app
b = app.backend.connparams
print(json.dumps({
  "broker_use_ssl": {k: str(v) for k, v in app.conf.broker_use_ssl.items()},
  "backend_use_ssl": {k: str(v) for k, v in app.conf.redis_backend_use_ssl.items()},
  "backend": [b["connection_class"].__name__, b["ssl_cert_reqs"] == ssl.CERT_REQUIRED,
              b["ssl_ca_certs"], b["port"]],
  "cache": {k: str(v) for k, v in
            s.CACHES["default"]["OPTIONS"]["CONNECTION_POOL_KWARGS"].items()},
}))
"""


def test_celery_and_the_cache_require_the_servers_certificate(
    tls_redis: TlsRedis,
) -> None:
    """The effective Celery/kombu settings, not only ours: broker_use_ssl and
    redis_backend_use_ssl with CERT_REQUIRED, the CA and the client pair, and
    the result backend's connection class and port."""
    f = tls_redis.folder
    want = {
        "ssl_cert_reqs": str(ssl.CERT_REQUIRED),
        "ssl_ca_certs": str(f / "ca.crt"),
        "ssl_check_hostname": "True",
        "ssl_certfile": str(f / "client.crt"),
        "ssl_keyfile": str(f / "client.key"),
    }
    out = shell_json(EFFECTIVE, tls_env(tls_redis, "web"))
    assert out == {
        "broker_use_ssl": want,
        "backend_use_ssl": want,
        "backend": ["SSLConnection", True, str(f / "ca.crt"), tls_redis.port],
        "cache": want,
    }


# What a client without a certificate meets (its first write races the alert).
NO_CLIENT_CERTIFICATE = (
    r"tlsv13 alert certificate required|EOF occurred in violation of protocol"
    r"|Connection reset by peer|Connection closed by server"
)


def test_a_client_without_the_ca_or_its_certificate_is_refused(
    tls_redis: TlsRedis,
) -> None:
    url = tls_redis.url("app_data")
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        client_from_url(url, tls_redis.tls(ca="rogue-ca")).ping()
    # tls-auth-clients yes: the server ends the handshake of a client without a
    # certificate with TLS 1.3's certificate_required alert; redis-py has sent
    # AUTH by then, so it reads the alert or finds the connection gone.
    with pytest.raises(redis.ConnectionError, match=NO_CLIENT_CERTIFICATE):
        client_from_url(url, tls_redis.tls(client=False)).ping()
    # The certificate names localhost, not 127.0.0.1: the host name is checked.
    with pytest.raises(redis.ConnectionError, match="IP address mismatch"):
        client_from_url(tls_redis.url("app_data", "127.0.0.1"), tls_redis.tls()).ping()
    with pytest.raises(ValueError, match="no CA is configured"):
        client_from_url(url)
    assert client_from_url(url, tls_redis.tls()).ping() is True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "REDIS_TLS_CA_FILE": "",
                "REDIS_TLS_CERT_FILE": "",
                "REDIS_TLS_KEY_FILE": "",
            },
            "is rediss:// but REDIS_TLS_CA_FILE is not set",
        ),
        ({"REDIS_TLS_CA_FILE": ""}, "REDIS_TLS_KEY_FILE need REDIS_TLS_CA_FILE"),
        (
            {"REDIS_APP_URL": "redis://app_data:pw@localhost:6379/0"},
            "REDIS_APP_URL is redis:// (plain text) while REDIS_TLS_CA_FILE is set",
        ),
        ({"REDIS_TLS_KEY_FILE": ""}, "a client certificate needs its key"),
    ],
)
def test_settings_refuse_tls_half_configured(
    tls_redis: TlsRedis, change: dict[str, str], message: str
) -> None:
    result = run_manage("check", env=tls_env(tls_redis, "worker", **change))
    assert result.returncode != 0
    assert message in result.stderr
