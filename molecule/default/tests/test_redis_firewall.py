"""The optional firewall admits listed client networks only."""

import pytest

from redisops_testlib.hosts import get_host, hosts_in_group

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
