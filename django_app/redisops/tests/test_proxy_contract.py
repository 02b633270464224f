"""The deployment contract under a real gunicorn with production settings:
the UNIX socket is the proxy's way in, a TCP peer is a client that reached
gunicorn directly. Proxy headers count only through the socket."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from redisops.clients import app_redis
from redisops.tests.api_clients import bearer, write_token_file
from redisops.tests.gunicorn_proc import Gunicorn, start_gunicorn

HTTPS = {"X-Forwarded-Proto": "https"}  # what the proxy adds
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


def test_a_rotation_takes_effect_without_restarting_gunicorn(tmp_path: Path) -> None:
    """Old and new token during the rollover, then the old one removed from
    the file (replaced by rename, as the role does): every worker refuses it
    from the next request on, with no restart (the same two workers)."""
    path = tmp_path / "api-tokens"
    old, new, eve = (secrets.token_urlsafe(32) for _ in range(3))
    write_token_file(path, {"carol": (old, new)})
    server = start_gunicorn(
        tmp_path / "gunicorn-rotation", APP_API_TOKENS_FILE=str(path)
    )
    try:

        def status(token: str) -> int:
            return server.via_socket(
                "GET", "/api/stream", {**HTTPS, **bearer(token)}
            ).status

        assert [status(t) for t in (old, new) * 5] == [200] * 10
        write_token_file(path, {"carol": (new,)})
        assert [status(old) for _ in range(10)] == [401] * 10
        assert [status(new) for _ in range(10)] == [200] * 10
        write_token_file(path, {"carol": (new,), "eve": (eve,)})
        assert [status(eve) for _ in range(10)] == [200] * 10
        refused = server.via_socket("GET", "/api/stream", {**HTTPS, **bearer(old)})
        assert refused.headers["www-authenticate"] == (
            'Bearer realm="redisops", error="invalid_token"'
        )
        assert server.proc.popen.poll() is None
        assert server.proc.output.count("Booting worker") == 2  # never restarted
    finally:
        server.proc.stop()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, ": cannot read it: No such file or directory"),
        ("# ok\nalice {token}\n", " line 2: the second field must be the token's"),
    ],
)
def test_gunicorn_does_not_start_with_a_bad_token_file(
    tmp_path: Path, content: str | None, reason: str
) -> None:
    """The message names the file and the line, never the line's text (here
    a token where its hash belongs)."""
    path = tmp_path / "api-tokens"
    token = secrets.token_urlsafe(32)
    if content is not None:
        path.write_text(content.format(token=token))
    with pytest.raises(RuntimeError, match="gunicorn exited") as failed:
        start_gunicorn(tmp_path / "gunicorn-bad", APP_API_TOKENS_FILE=str(path))
    output = str(failed.value)
    assert f"ImproperlyConfigured: APP_API_TOKENS_FILE {path}{reason}" in output
    assert token not in output
