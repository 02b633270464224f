"""Redis connections from URLs: one URL (and one ACL user) per purpose.

Accepted forms, for every ``REDIS_*_URL`` setting:

``redis://[USER:PASSWORD@]HOST[:PORT][/DB]``
    plain TCP (``rediss://`` for TLS).
``unix://[USER:PASSWORD@]/path/redis.sock[?db=N]``
    unix socket.
``sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...][/DB]?master_name=NAME``
    Redis Sentinel; USER/PASSWORD log in to the master, optional
    ``sentinel_username``/``sentinel_password`` query parameters to the
    sentinels. Celery's own ``sentinel://a;sentinel://b`` form is accepted too.

USER and PASSWORD are percent-encoded (``urllib.parse.quote``). This module
imports no Django code, so settings modules can use it.

TLS (``rediss://``) always verifies the server: its certificate must chain
to the CA file of ``RedisTls`` and name the URL's host; a client certificate
and key are sent when given (Redis's ``tls-auth-clients yes``). A
``rediss://`` URL without a ``RedisTls`` is refused, never connected
unverified. A ``sentinel://`` URL given a ``RedisTls`` speaks TLS to the
Sentinels and to the master they name, verified the same way (the
certificates must name the addresses the Sentinels report, e.g. IP SANs).
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)

PLAIN_SCHEMES = ("redis", "rediss", "unix")
_PASSWORD_RE = re.compile(r"(//[^:/@;]*):[^@;]*@")

# redis-py sends CLIENT SETINFO on every new connection by default; from
# Redis 7.2 on, a user without it (app_budget, the Sentinels' client user)
# gets an ACL denial per connection in ACL LOG, where on-call looks for real
# ones. None of the app's clients sends it.
NO_SETINFO: dict[str, Any] = {"lib_name": None, "lib_version": None}

# Client defaults for the app connection: fail fast instead of hanging a
# request, and notice dead connections (e.g. after a Redis restart).
APP_CLIENT_DEFAULTS: dict[str, Any] = {
    "socket_connect_timeout": 2.0,
    "socket_timeout": 5.0,
    "health_check_interval": 15,
    "decode_responses": True,
    **NO_SETINFO,
}

# Client defaults for every connection to a Sentinel. redis-py copies the
# socket_* options of the master connection to its Sentinel connections only
# while sentinel_kwargs is unset; once it carries the Sentinel's credentials,
# anything not in it is dropped, and a hung Sentinel (accepting, never
# answering) would hang kombu, Celery's results and the cache forever instead
# of costing one timeout before the next Sentinel is asked.
SENTINEL_CLIENT_DEFAULTS: dict[str, Any] = {
    "socket_connect_timeout": 2.0,
    "socket_timeout": 2.0,
    "socket_keepalive": True,
    **NO_SETINFO,
}


def sentinel_master_retry() -> Retry:
    """The retry a sentinel:// master client gets: the one redis-py gives a
    redis:// client by default (3 more attempts on a connection error or
    timeout, jittered backoff). master_for's connections have none of their
    own, so a command whose connection a switchover drops (CLIENT KILL while
    the old master's writes are paused: never executed) would fail the
    request instead of being sent again to the new master."""
    return Retry(ExponentialWithJitterBackoff(base=1, cap=10), 3)


class _AskTheSentinels:
    """A master connection that asks the Sentinels for the master's address on
    every (re)connect. redis-py 6.4 does only when a connection is taken from
    the pool: a command's retry reconnects (send_packed_command ->
    connect_check_health) to the address the connection had, so a write a
    switchover dropped went back to the old master, now a replica, 3 times
    (READONLY, "The previous master is now a slave", backoffs of up to 2, 4,
    8 s) and failed after 4-14 s (test_switchover_load)."""

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if not retry_socket_connect:  # connect_to: the address just asked for
            super().connect_check_health(  # type: ignore[misc]
                check_health=check_health, retry_socket_connect=False
            )
            return
        self.connect()  # type: ignore[attr-defined]


class SentinelMasterConnection(_AskTheSentinels, SentinelManagedConnection):
    pass


class SentinelMasterSSLConnection(_AskTheSentinels, SentinelManagedSSLConnection):
    pass


class SwitchoverAwareSentinel(Sentinel):
    """redis-py's Sentinel, taking a master's address from GET-MASTER-ADDR-BY-
    NAME while a Sentinel runs a failover. SENTINEL MASTERS (what redis-py
    reads) names the old master on the Sentinel that leads a failover until
    the failover ends, i.e. until it has reconfigured every other replica:
    1-2 s after it (and its peers) already name the promoted one to clients,
    which is when redis-sentinel-switchover lets the old master's clients
    go; and redis-py asks that Sentinel first (the URL's first, where the
    switchover runs)."""

    def discover_master(self, service_name: str) -> tuple[str, int]:
        errors = []
        for index, sentinel in enumerate(self.sentinels):
            try:
                state = sentinel.sentinel_masters().get(service_name)
                if not (state and self.check_master_state(state, service_name)):
                    continue
                address = (state["ip"], state["port"])
                if "failover_in_progress" in state["flags"]:
                    named = sentinel.execute_command(
                        "SENTINEL GET-MASTER-ADDR-BY-NAME", service_name
                    )
                    address = (named[0], int(named[1])) if named else address
            except (RedisConnectionError, RedisTimeoutError) as exc:
                errors.append(f"{sentinel} - {exc!r}")
                continue
            # Asked first next time, as redis-py does.
            self.sentinels[0], self.sentinels[index] = sentinel, self.sentinels[0]
            return address
        raise MasterNotFoundError(
            f"No master found for {service_name!r}"
            + (f" : {', '.join(errors)}" if errors else "")
        )


@dataclass(frozen=True)
class RedisTarget:
    """A parsed Redis URL."""

    url: str
    scheme: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str | None = None
    sentinel_kwargs: dict[str, str] = field(default_factory=dict)

    @property
    def is_sentinel(self) -> bool:
        return self.scheme == "sentinel"

    def sentinel_options(self, tls: RedisTls | None = None) -> dict[str, Any]:
        """redis-py's ``sentinel_kwargs``: the timeouts, TLS when given, then
        the URL's credentials."""
        return {
            **SENTINEL_CLIENT_DEFAULTS,
            **(tls.sentinel_kwargs() if tls else {}),
            **self.sentinel_kwargs,
        }


def _userinfo(netloc: str) -> tuple[str | None, str | None, str]:
    if "@" not in netloc:
        return None, None, netloc
    userinfo, hosts = netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) or None), hosts


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    host, _, port = item.strip().rpartition(":")
    if not host:  # no port given
        return item.strip(), default_port
    return host.strip("[]"), int(port)


def parse_redis_url(url: str) -> RedisTarget:
    """Parse a Redis or Sentinel URL; raise ValueError with the reason."""
    if not url:
        raise ValueError("empty Redis URL")
    if ";" in url:  # Celery's form: sentinel://a:1/0;sentinel://b:2/0
        splits = [urlsplit(p.strip()) for p in url.split(";") if p.strip()]
        if any(s.scheme != "sentinel" for s in splits):
            raise ValueError("';' separates sentinel:// URLs only")
        first = splits[0]
        creds = first.netloc.rsplit("@", 1)[0] + "@" if "@" in first.netloc else ""
        hosts = ",".join(_userinfo(s.netloc)[2] for s in splits)
        queries = [s.query for s in splits if s.query]
        query = f"?{queries[-1]}" if queries else ""
        url = f"sentinel://{creds}{hosts}{first.path}{query}"
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme not in (*PLAIN_SCHEMES, "sentinel"):
        raise ValueError(f"unsupported Redis URL scheme {scheme!r}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    user, password, hosts = _userinfo(parts.netloc)
    path_db = parts.path.strip("/") if scheme != "unix" else ""
    db_text = query.get("db") or path_db or "0"
    if not (db_text.isascii() and db_text.isdigit()):
        raise ValueError(f"Redis database must be a number, got {db_text!r}")
    if scheme != "sentinel":
        return RedisTarget(
            url=url, scheme=scheme, db=int(db_text), username=user, password=password
        )
    sentinels = tuple(_host_port(h, 26379) for h in hosts.split(",") if h.strip())
    if not sentinels:
        raise ValueError("sentinel URL names no sentinel host")
    master = query.get("master_name") or query.get("service_name")
    if not master:
        raise ValueError("sentinel URL needs ?master_name=NAME")
    skw = {}
    if query.get("sentinel_username"):
        skw["username"] = query["sentinel_username"]
    if query.get("sentinel_password"):
        skw["password"] = query["sentinel_password"]
    return RedisTarget(
        url=url,
        scheme=scheme,
        db=int(db_text),
        username=user,
        password=password,
        sentinels=sentinels,
        master_name=master,
        sentinel_kwargs=skw,
    )


@dataclass(frozen=True)
class RedisTls:
    """TLS to Redis: the CA that signed the server's certificate (required,
    with the host name checked), and optionally this client's certificate and
    key (both or neither)."""

    ca_file: str
    cert_file: str = ""
    key_file: str = ""

    def __post_init__(self) -> None:
        if not self.ca_file:
            raise ValueError("TLS to Redis needs the CA file")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError(
                "a client certificate needs its key, a key its certificate"
            )

    def redis_kwargs(self) -> dict[str, Any]:
        """redis-py SSLConnection arguments (also kombu's broker_use_ssl and
        Celery's redis_backend_use_ssl, which pass them on)."""
        kwargs: dict[str, Any] = {
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
            "ssl_ca_certs": self.ca_file,
            "ssl_check_hostname": True,
        }
        if self.cert_file:
            kwargs.update(ssl_certfile=self.cert_file, ssl_keyfile=self.key_file)
        return kwargs

    def sentinel_kwargs(self) -> dict[str, Any]:
        """The same for a connection with no URL scheme to say TLS: a Sentinel,
        or a master found through one (redis-py then picks its SSL class)."""
        return {"ssl": True, **self.redis_kwargs()}


def tls_kwargs(url: str, tls: RedisTls | None) -> dict[str, Any]:
    """The TLS arguments for a connection to ``url``: none for plain TCP or a
    unix socket, ``tls.redis_kwargs()`` for rediss://, ``tls.sentinel_kwargs()``
    for sentinel:// when TLS is configured; ValueError for a rediss:// URL
    without a CA (never an unverified connection)."""
    scheme = parse_redis_url(url).scheme
    if scheme == "sentinel":
        return tls.sentinel_kwargs() if tls else {}
    if scheme != "rediss":
        return {}
    if tls is None:
        raise ValueError(
            f"{redacted(url)} is rediss:// but no CA is configured to verify the server"
        )
    return tls.redis_kwargs()


def client_from_url(
    url: str, tls: RedisTls | None = None, **kwargs: Any
) -> redis.Redis:
    """Return a redis-py client; a Sentinel-managed master client for sentinel://.
    A rediss:// URL connects with ``tls`` (tls_kwargs)."""
    opts = {**APP_CLIENT_DEFAULTS, **tls_kwargs(url, tls), **kwargs}
    target = parse_redis_url(url)
    if not target.is_sentinel:
        return redis.Redis.from_url(url, **opts)
    sentinel = SwitchoverAwareSentinel(
        list(target.sentinels), sentinel_kwargs=target.sentinel_options(tls)
    )
    connection_class = (
        SentinelMasterSSLConnection if opts.get("ssl") else SentinelMasterConnection
    )
    return sentinel.master_for(
        target.master_name,
        username=target.username,
        password=target.password,
        db=target.db,
        **{
            "retry": sentinel_master_retry(),
            "connection_class": connection_class,
            **opts,
        },
    )


def _credentials(target: RedisTarget) -> str:
    if target.username is None and target.password is None:
        return ""
    user = quote(target.username or "", safe="")
    password = quote(target.password or "", safe="")
    return f"{user}:{password}@"


def celery_url_and_options(
    url: str, keyprefix: str, tls: RedisTls | None = None
) -> tuple[str, dict[str, Any]]:
    """Celery broker/result URL and transport options for one purpose.

    ``keyprefix`` becomes kombu's/Celery's ``global_keyprefix``, so every key and
    channel the user touches starts with it (see redisops.redis_acl). ``tls``
    reaches the Sentinels through ``sentinel_kwargs`` (the master connection
    gets it from broker_use_ssl / redis_backend_use_ssl: tls_kwargs).
    """
    target = parse_redis_url(url)
    options: dict[str, Any] = {"global_keyprefix": keyprefix}
    if not target.is_sentinel:
        return url, options
    creds = _credentials(target)
    celery_url = ";".join(
        f"sentinel://{creds}{host}:{port}/{target.db}"
        for host, port in target.sentinels
    )
    options["master_name"] = target.master_name
    options["sentinel_kwargs"] = target.sentinel_options(tls)
    return celery_url, options


def celery_broker_transport(url: str) -> str:
    """Celery's ``broker_transport`` for a broker URL: kombu's Redis or
    Sentinel transport with refused writes waited out (redisops.celery_redis;
    named, not imported: settings load no Celery code)."""
    name = "SentinelTransport" if parse_redis_url(url).is_sentinel else "Transport"
    return f"redisops.celery_redis:{name}"


def django_cache_config(
    url: str, key_prefix: str, tls: RedisTls | None = None
) -> dict[str, Any]:
    """A django-redis CACHES entry; Sentinel-aware; TLS for rediss://."""
    target = parse_redis_url(url)
    options: dict[str, Any] = {
        "SOCKET_CONNECT_TIMEOUT": 2,
        "SOCKET_TIMEOUT": 2,
        # A cache outage must not take the site down: treat errors as misses.
        # https://github.com/jazzband/django-redis#memcached-exceptions-behavior
        "IGNORE_EXCEPTIONS": True,
    }
    if tls_kwargs(url, tls):
        # Passed to redis-py's ConnectionPool.from_url with the URL.
        options["CONNECTION_POOL_KWARGS"] = tls_kwargs(url, tls)
    location = url
    if target.is_sentinel:
        location = f"redis://{_credentials(target)}{target.master_name}/{target.db}"
        options.update(
            CLIENT_CLASS="django_redis.client.SentinelClient",
            CONNECTION_FACTORY="django_redis.pool.SentinelConnectionFactory",
            SENTINELS=list(target.sentinels),
            SENTINEL_KWARGS=target.sentinel_options(tls),
        )
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": location,
        "KEY_PREFIX": key_prefix,
        "OPTIONS": options,
    }


def redacted(url: str) -> str:
    """The URL with its passwords replaced, for logs and error messages."""
    return _PASSWORD_RE.sub(r"\1:***@", url)
