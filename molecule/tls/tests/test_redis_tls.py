"""TLS only: plaintext is refused, a verified TLS client works, a forged one does not."""

import re

from redisops_testlib.hosts import journal
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import RedisCli, admin
from redisops_testlib.scenario import scenario_of

REDIS_VARS = scenario_of(__file__).redis_vars
APP = REDIS_VARS["redis_server_acl_users"][0]
TLS_PORT = REDIS_VARS.get("redis_server_tls_port", 6380)
PLAIN_PORT = REDIS_VARS.get("redis_server_port", 6379)
CLIENT_DIR = "/etc/redis-client"
# RedisCli's TLS files (redis-cli --tls --cacert/--cert/--key): verifying the server.
VERIFIED = {"REDIS_TLS_CA": f"{CLIENT_DIR}/ca.crt"}
# What redis-cli says when the server drops the connection during the handshake.
DROPPED = r"Connection reset by peer|Server closed the connection|I/O error"


def cli(client, server_ip, port, tls=None, cmd=("PING",)):
    return RedisCli(client, server_ip, port, tls or {}).out(APP["name"], APP["password"], *cmd)


def refused_handshake(server, since: str, reason: str) -> None:
    """Redis logged, since `since`, a TLS connection it refused for OpenSSL's `reason`."""
    refused = f"Error accepting a client connection: .*{reason}"
    wait_for(lambda: re.search(refused, journal(server, "redis-server", since=since)), timeout=10)


def test_plain_port_is_closed(client, server_ip):
    assert "Connection refused" in cli(client, server_ip, PLAIN_PORT)


def test_plaintext_on_tls_port_is_refused(server, client, server_ip):
    since = server.check_output("date +@%s")
    out = cli(client, server_ip, TLS_PORT)
    # The client sees its connection dropped; Redis says why: the bytes were no TLS record.
    assert re.search(DROPPED, out), out
    refused_handshake(server, since, "wrong version number")


def test_verified_tls_client_works(client, server_ip):
    assert cli(client, server_ip, TLS_PORT, VERIFIED) == "PONG"


def test_tls_client_with_its_certificate_works(client, server_ip):
    tls = {**VERIFIED, "REDIS_TLS_CERT": f"{CLIENT_DIR}/client.crt", "REDIS_TLS_KEY": f"{CLIENT_DIR}/client.key"}
    assert cli(client, server_ip, TLS_PORT, tls, ("SET", "app:tls", "ok")) == "OK"


def test_client_that_trusts_another_ca_rejects_the_server(client, server_ip):
    out = cli(client, server_ip, TLS_PORT, {"REDIS_TLS_CA": f"{CLIENT_DIR}/rogue-ca.crt"})
    assert "certificate verify failed" in out


def test_server_rejects_client_certificate_from_unknown_ca(server, client, server_ip):
    since = server.check_output("date +@%s")
    rogue = {"REDIS_TLS_CERT": f"{CLIENT_DIR}/rogue-client.crt", "REDIS_TLS_KEY": f"{CLIENT_DIR}/rogue-client.key"}
    tls = {**VERIFIED, **rogue}
    out = cli(client, server_ip, TLS_PORT, tls)
    assert re.search(DROPPED, out), out
    refused_handshake(server, since, "certificate verify failed")


def test_tls_still_requires_acl_auth(client, server_ip):
    assert "NOAUTH" in RedisCli(client, server_ip, TLS_PORT, VERIFIED).out(None, None, "PING")


def test_role_administers_redis_over_tls(server):
    # No unix socket in this scenario: redis-admin must use TLS on 127.0.0.1.
    assert admin(server, "PING") == "PONG"
