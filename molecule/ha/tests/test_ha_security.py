"""Sentinel and Redis as other hosts meet them: closed until configured, dropped for a
host in no allow-list, no anonymous access, and the client user cannot reconfigure or
fail over the fleet."""

import pytest
from testinfra.host import Host

from redisops_testlib.ha import Ha
from redisops_testlib.hosts import get_host, hosts_in_group, run_client


@pytest.fixture(scope="module")
def outsider(scenario) -> Host:
    """A host on the scenario network in no group and no allow-list, never converged."""
    return get_host(hosts_in_group(scenario, "outsiders")[0])


def _dropped(host: Host, table: str) -> int:
    """Packets the table's drop rule has counted."""
    rules = host.check_output(f"nft list table inet {table}")
    line = next(r for r in rules.splitlines() if "drop" in r)
    return int(line.split("packets")[1].split()[0])


@pytest.mark.converged_state
def test_sentinel_never_ran_with_the_packaged_config(ha: Ha):
    # The package's sentinel.conf logs to this file; the role's logs to journald.
    # Its unit was masked before the package went on, so it never started.
    for node in ha.nodes:
        assert not node.host.file("/var/log/redis/redis-sentinel.log").exists, node.name
        conf = node.host.file("/etc/redis/sentinel/sentinel.conf")
        assert conf.user == "redis", node.name
        # Sentinel rewrites it at start (its own mode); never readable by others.
        assert conf.mode & 0o007 == 0, node.name
        assert node.host.file("/etc/redis").user == "root", node.name
        assert "/etc/redis/sentinel/sentinel.conf" in node.host.check_output(
            "systemctl show -p ExecStart --value redis-sentinel"
        )


@pytest.mark.converged_state
def test_an_unlisted_host_is_dropped_at_the_sentinel_and_redis_ports(ha: Ha, outsider: Host):
    # Tried, not read from the rules: the client host connects to each port, the
    # outsider's connect is dropped (no answer, not even a refusal), and the node's
    # drop rule counts it.
    for node in ha.nodes:
        for port, table in ((26379, "redis_sentinel"), (6379, "redis_server")):
            assert run_client(ha.client, "connect", address=node.address, port=port, timeout=5) == "open"
            before = _dropped(node.host, table)
            tried = run_client(outsider, "connect", address=node.address, port=port, timeout=3)
            print(f"outsider -> {node.name}:{port}: {tried}")
            assert tried == "timeout", (node.name, port, tried)
            assert _dropped(node.host, table) > before, (node.name, table)


@pytest.mark.converged_state
def test_unauthenticated_ping_to_sentinel_gets_noauth(ha: Ha):
    # From the client host, which the firewalls admit: Sentinel and Redis answer,
    # and refuse a client that has not authenticated.
    for node in ha.nodes:
        reply = ha.sentinel(node).out(None, None, "PING")
        assert reply.startswith("NOAUTH Authentication required"), (node.name, reply)
        reply = ha.redis(node).out(None, None, "PING")
        assert reply.startswith("NOAUTH Authentication required"), (node.name, reply)


@pytest.mark.converged_state
def test_sentinel_client_user_reads_but_cannot_set_failover_or_reset(ha: Ha):
    node, pw = ha.nodes[0], ha.sentinel_passwords["client"]
    cli = ha.sentinel(node)
    # What redis-py's Sentinel client asks.
    assert ha.master_name in cli.out("sentinel-client", pw, "SENTINEL", "MASTERS")
    assert "ip" in cli.out("sentinel-client", pw, "SENTINEL", "SLAVES", ha.master_name)
    assert cli.out("sentinel-client", pw, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", ha.master_name)
    before = cli.out("sentinel-client", pw, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", ha.master_name)
    for args in (
        ["SENTINEL", "SET", ha.master_name, "quorum", "1"],
        ["SENTINEL", "FAILOVER", ha.master_name],
        ["SENTINEL", "RESET", "*"],
        ["SENTINEL", "REMOVE", ha.master_name],
        ["SENTINEL", "CONFIG", "SET", "announce-ip", "10.0.30.99"],
    ):
        reply = cli.out("sentinel-client", pw, *args)
        print(f"client user: {' '.join(args)} -> {reply}")
        assert reply.startswith("NOPERM"), (args, reply)
    assert cli.out("sentinel-client", pw, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", ha.master_name) == before
    quorum = node.host.check_output(f"redis-sentinel-admin SENTINEL MASTER {ha.master_name} | grep -A1 -x quorum")
    assert quorum.split()[1] == str(ha.vars.get("redis_sentinel_quorum", 2))
