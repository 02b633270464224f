"""The deployment contract under a real gunicorn with production settings:
the UNIX socket is the proxy's way in, a TCP peer is a client that reached
gunicorn directly. Proxy headers count only through the socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redisops.clients import app_redis
from redisops.tests.gunicorn_proc import Gunicorn, start_gunicorn

LIMIT = 3  # per 60 s on /api/limited for these servers


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    """Production settings as deployed: https redirect on."""
    server = start_gunicorn(
        tmp_path_factory.mktemp("gunicorn"),
        APP_LIMITED_LIMIT=str(LIMIT),
        APP_LIMITED_PERIOD="60",
    )
    yield server
    server.proc.stop()


@pytest.fixture
def web_without_redirect(tmp_path: Path) -> Iterator[Gunicorn]:
    """The same with DJANGO_SECURE_SSL_REDIRECT=false, so a TCP peer reaches
    the views instead of being redirected."""
    server = start_gunicorn(
        tmp_path / "gunicorn-plain",
        APP_LIMITED_LIMIT=str(LIMIT),
        APP_LIMITED_PERIOD="60",
        DJANGO_SECURE_SSL_REDIRECT="false",
    )
    yield server
    server.proc.stop()


def test_forwarded_proto_from_a_tcp_peer_still_redirects(web: Gunicorn) -> None:
    """gunicorn trusts X-Forwarded-Proto only from the socket, and the app
    has no SECURE_PROXY_SSL_HEADER of its own: a direct client claiming
    https is redirected like any plain request."""
    for headers in ({}, {"X-Forwarded-Proto": "https"}):
        answer = web.via_tcp("GET", "/api/limited", headers)
        assert answer.status == 301, (headers, answer)
        assert answer.headers["location"] == "https://localhost/api/limited"


def test_the_socket_with_the_proxys_headers_is_https(web: Gunicorn) -> None:
    addr = "203.0.113.50"
    app_redis().delete(f"app:rl:gcra:api-limited:{addr}")
    answer = web.via_socket(
        "GET",
        "/api/limited",
        {"X-Forwarded-Proto": "https", "X-Forwarded-For": addr},
    )
    assert answer.status == 200, answer
    assert "strict-transport-security" in answer.headers
    # Without the proxy's X-Forwarded-Proto the socket is plain http too.
    assert web.via_socket("GET", "/api/limited").status == 301


def test_probes_are_not_redirected(web: Gunicorn) -> None:
    """healthz, readyz and version are exempt: probes call the socket (or a
    loopback port) directly, without the proxy's headers."""
    for path in ("/healthz", "/version"):
        assert web.via_socket("GET", path).status == 200
        assert web.via_tcp("GET", path).status == 200
    assert web.via_socket("GET", "/readyz").status in {200, 503}  # not 301


def test_thirty_forged_forwarded_for_from_a_tcp_peer_are_one_client(
    web_without_redirect: Gunicorn,
) -> None:
    """The issue's attack: 30 requests, each with its own forged
    X-Forwarded-For, straight at gunicorn: admitted no more than the limit,
    all counted against the peer's own address."""
    r = app_redis()
    r.delete("app:rl:gcra:api-limited:127.0.0.1")
    forged = [f"198.18.0.{i}" for i in range(30)]
    statuses = [
        web_without_redirect.via_tcp(
            "GET", "/api/limited", {"X-Forwarded-For": addr}
        ).status
        for addr in forged
    ]
    assert statuses.count(200) == LIMIT
    assert statuses == [200] * LIMIT + [429] * (30 - LIMIT)
    assert r.exists("app:rl:gcra:api-limited:127.0.0.1")
    assert not any(r.exists(f"app:rl:gcra:api-limited:{a}") for a in forged)


def test_the_proxys_forwarded_for_through_the_socket_is_the_client(
    web: Gunicorn,
) -> None:
    r = app_redis()
    clients = [f"203.0.113.{i}" for i in range(60, 64)]
    r.delete(*(f"app:rl:gcra:api-limited:{a}" for a in clients))

    def get(addr: str) -> int:
        headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": addr}
        return web.via_socket("GET", "/api/limited", headers).status

    assert [get(a) for a in clients] == [200] * len(clients)
    assert all(r.exists(f"app:rl:gcra:api-limited:{a}") for a in clients)
    assert [get(clients[0]) for _ in range(LIMIT)] == [200] * (LIMIT - 1) + [429]
