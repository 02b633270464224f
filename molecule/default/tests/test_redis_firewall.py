"""The optional firewall admits listed client networks only, and Redis does not run without it."""

import pytest

from redisops_testlib.hosts import get_host, hosts_in_group
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import ping

CONNECT = "timeout 3 bash -c '</dev/tcp/{ip}/{port}'"


@pytest.fixture(scope="module")
def outsider(scenario):
    return get_host(hosts_in_group(scenario, "outsiders")[0])


def test_listed_client_network_reaches_redis(client, server_ip):
    assert client.run(CONNECT.format(ip=server_ip, port=6379)).rc == 0


def test_unlisted_host_is_dropped(outsider, server_ip):
    # Dropped, not refused: the connect hangs until timeout (exit 124).
    assert outsider.run(CONNECT.format(ip=server_ip, port=6379)).rc == 124


def test_drop_rule_counted_the_outsider(server, outsider, server_ip):
    def dropped() -> int:
        rules = server.check_output("nft list table inet redis_server")
        line = next(r for r in rules.splitlines() if "drop" in r)
        return int(line.split("packets")[1].split()[0])

    before = dropped()
    outsider.run(CONNECT.format(ip=server_ip, port=6379))
    assert dropped() > before


def test_firewall_unit_is_enabled(server):
    assert server.service("redis-server-firewall").is_enabled


RULES = "/etc/nftables.d/redis-server.nft"


def test_redis_stays_closed_when_the_firewall_rules_fail_to_load(server, client, outsider, server_ip):
    """Fail closed: rules that do not load take Redis down with them (Requires= +
    After= on the firewall unit in Redis's drop-in), and Redis does not start until
    they load again; an unfiltered Redis is never reachable."""
    server.check_output(f"cp -p {RULES} {RULES}.matrix-backup")
    try:
        server.check_output(f"echo 'this is not an nftables ruleset' > {RULES}")
        # A restart of the firewall: its stop removes the table, its start fails.
        assert server.run("systemctl restart redis-server-firewall").rc != 0
        assert server.run("nft list table inet redis_server").rc != 0  # no filter
        assert server.run("systemctl is-active redis-server").stdout.strip() in ("inactive", "failed")
        # An explicit start is refused: a dependency failed.
        start = server.run("systemctl start redis-server")
        assert start.rc != 0
        assert "dependency" in (start.stderr + start.stdout).lower()
        assert server.check_output("ss -Hltn 'sport = :6379'") == ""
        # The hosts the filter would drop, or admit, find nothing listening.
        for host in (outsider, client):
            assert host.run(CONNECT.format(ip=server_ip, port=6379)).rc not in (0, 124)
    finally:
        server.check_output(f"mv {RULES}.matrix-backup {RULES}")
        server.check_output("systemctl start redis-server")
        wait_for(lambda: ping(server) == "PONG", timeout=60)
    assert server.run("nft list table inet redis_server").rc == 0
    assert outsider.run(CONNECT.format(ip=server_ip, port=6379)).rc == 124
    assert client.run(CONNECT.format(ip=server_ip, port=6379)).rc == 0
