"""The app talks to Redis as production does (the inventory's redisops_redis_tls): Redis
serves TLS only, verified against the test CA, and requires the app's client certificate;
its plaintext port is closed. That the app works over TLS is every other test of this
scenario (tasks, beat, Pub/Sub, Streams, smoke); these try what must fail, from the app
hosts, and read what the app's processes were given."""

import re

import pytest

from redisops_testlib.hosts import host_address, hosts_in_group, run_client
from redisops_testlib.redis_cli import APP_HOST_TLS
from redisops_testlib.scenario import scenario_of

SCENARIO = scenario_of(__file__)
REDIS = hosts_in_group(SCENARIO, "redis_servers")[0]  # as the app names it (wiring.yml)
PORT = SCENARIO.redis_port
PLAIN_PORT = 6379
CA_ONLY = {"REDIS_TLS_CA": APP_HOST_TLS["REDIS_TLS_CA"]}


def test_the_scenario_runs_redis_over_tls():
    # What the other tests prove over TLS: the inventory turns it on, on 6380.
    assert (SCENARIO.redis_tls, PORT) == (True, 6380)


@pytest.mark.converged_state
def test_redis_listens_on_its_tls_port_only(redis):
    """ss on the Redis host: the TLS port on loopback and the host's address, nothing
    on the plaintext port."""
    listening = redis.check_output("ss -Hltn")
    local = {line.split()[3] for line in listening.splitlines()}
    assert {f"127.0.0.1:{PORT}", f"{host_address(redis)}:{PORT}"} <= local, listening
    assert [a for a in local if a.endswith(f":{PLAIN_PORT}")] == [], listening


def test_the_plaintext_port_refuses_the_app_hosts(web, worker):
    for host in (web, worker):
        assert run_client(host, "connect", address=REDIS, port=PLAIN_PORT) == "refused"


def test_a_client_without_the_app_certificate_is_refused(web, worker):
    """A client that verifies Redis's certificate but shows none gets TLS 1.3's
    certificate_required alert before it can send a command; with the app's client
    certificate the same handshake is accepted (Redis waits for a command) and the
    app's user answers."""
    for host in (web, worker):
        assert run_client(host, "tls_hello", CA_ONLY, address=REDIS, port=PORT) == "TLSV13_ALERT_CERTIFICATE_REQUIRED"
        assert run_client(host, "tls_hello", APP_HOST_TLS, address=REDIS, port=PORT) == "waiting"
        env = {"REDIS_PASSWORD": SCENARIO.passwords["app_budget"], **APP_HOST_TLS}
        kw = {"address": REDIS, "port": PORT, "user": "app_budget", "commands": [["PING"]], "multi": False}
        assert run_client(host, "redis_try", env, **kw) == {"replies": ["+PONG"]}


def test_every_app_process_is_given_rediss_urls_to_the_tls_port(web, worker):
    """Each process's env file: only rediss:// URLs, to Redis by name on its TLS port,
    and the CA and client certificate files."""
    for host, processes in ((web, ["web", "beat"]), (worker, ["worker", "consumers"])):
        for process in processes:
            env = host.check_output(f"cat /etc/redisops/{process}.env")
            urls = re.findall(r"^REDIS_\w+_URL=(.*)$", env, re.MULTILINE)
            assert urls, (process, env.count("\n"))
            assert re.findall(r"^(REDIS_TLS_\w+_FILE)=", env, re.MULTILINE) == [
                "REDIS_TLS_CA_FILE",
                "REDIS_TLS_CERT_FILE",
                "REDIS_TLS_KEY_FILE",
            ], process
            for url in urls:
                assert re.fullmatch(rf"'?rediss://\w+:[^@]+@{REDIS}:{PORT}/0'?", url), (process, url.split(":")[0])
        for name in ("redis-ca.crt", "redis-client.crt", "redis-client.key"):
            assert host.file(f"/etc/redisops/{name}").exists
