"""Who the client is, and whether the request was https, decided by the
connection (redisops.middleware.client_address; wsgi.url_scheme), never by a
header the client could send itself. The same rules under a real gunicorn:
test_proxy_contract.py."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from redisops.clients import app_redis
from redisops.middleware import client_address


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        # A TCP peer is its own address, whatever it claims.
        ("198.51.100.7", None, "198.51.100.7"),
        ("198.51.100.7", "203.0.113.9", "198.51.100.7"),
        ("2001:db8::7", "203.0.113.9", "2001:db8::7"),
        ("::ffff:198.51.100.7", "203.0.113.9", "198.51.100.7"),
        # A UNIX-socket peer (gunicorn: empty or the socket's name) is the
        # proxy: the address it put in X-Forwarded-For.
        ("", "203.0.113.9", "203.0.113.9"),
        ("/run/redisops/gunicorn.sock", "203.0.113.9", "203.0.113.9"),
        ("", "2001:db8::9", "2001:db8::9"),
        ("", " 203.0.113.9 ", "203.0.113.9"),
        # The proxy replaces the header with one address; were there more,
        # only the last (the one the proxy would have appended) counts.
        ("", "10.0.0.1, 203.0.113.9", "203.0.113.9"),
        # Unparsable: one shared "unknown" client.
        ("", None, "unknown"),
        ("", "", "unknown"),
        ("", "not-an-ip", "unknown"),
        ("", "203.0.113.9, junk", "unknown"),
        ("", "203.0.113.9:4711", "unknown"),
        ("", "[2001:db8::9]", "unknown"),
    ],
)
def test_client_address_trusts_forwarded_for_only_from_the_socket(
    remote: str, forwarded: str | None, expected: str
) -> None:
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    request = RequestFactory().get("/api/limited", **extra)
    assert client_address(request) == expected


def test_forged_forwarded_for_from_a_tcp_peer_does_not_change_the_client(
    client: Client,
) -> None:
    """Distinct forged X-Forwarded-For values from one TCP peer share that
    peer's budget (test settings: 3 per 60 s)."""
    r = app_redis()
    peer = "198.51.100.20"
    r.delete(f"app:rl:gcra:api-limited:{peer}")
    statuses = [
        client.get(
            "/api/limited", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=f"203.0.113.{i}"
        ).status_code
        for i in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]
    assert r.exists(f"app:rl:gcra:api-limited:{peer}")
    assert not any(r.exists(f"app:rl:gcra:api-limited:203.0.113.{i}") for i in range(5))


def test_forwarded_for_through_the_socket_is_the_client(client: Client) -> None:
    """Through the socket (REMOTE_ADDR not an IP) each forwarded address is a
    client of its own; the same one again is limited."""
    r = app_redis()
    addresses = [f"203.0.113.{i}" for i in range(100, 105)]
    r.delete(*(f"app:rl:gcra:api-limited:{a}" for a in addresses))
    statuses = [
        client.get("/api/limited", REMOTE_ADDR="", HTTP_X_FORWARDED_FOR=a).status_code
        for a in addresses
    ]
    assert statuses == [200] * 5
    assert all(r.exists(f"app:rl:gcra:api-limited:{a}") for a in addresses)
    same = [
        client.get(
            "/api/limited", REMOTE_ADDR="", HTTP_X_FORWARDED_FOR=addresses[0]
        ).status_code
        for _ in range(3)
    ]
    assert same == [200, 200, 429]  # 3 per 60 s, one used above


def test_unparsable_forwarded_for_through_the_socket_is_one_unknown_client(
    client: Client,
) -> None:
    r = app_redis()
    r.delete("app:rl:gcra:api-limited:unknown")
    statuses = [
        client.get(
            "/api/limited", REMOTE_ADDR="", HTTP_X_FORWARDED_FOR=f"junk-{i}"
        ).status_code
        for i in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    assert r.exists("app:rl:gcra:api-limited:unknown")


def test_forwarded_proto_from_a_tcp_peer_does_not_make_the_request_secure(
    client: Client, settings
) -> None:
    """No SECURE_PROXY_SSL_HEADER: only wsgi.url_scheme (gunicorn sets it
    from X-Forwarded-Proto for the socket alone) makes a request https."""
    settings.SECURE_SSL_REDIRECT = True
    forged = client.get(
        "/api/limited", REMOTE_ADDR="198.51.100.30", HTTP_X_FORWARDED_PROTO="https"
    )
    assert forged.status_code == 301
    assert forged["Location"] == "https://testserver/api/limited"
    secure = client.get("/api/limited", REMOTE_ADDR="198.51.100.31", secure=True)
    assert secure.status_code == 200
