"""The Redis exporter for each Sentinel (roles/exporters, unit
prometheus-redis-exporter-sentinel), scraped from the client host as Prometheus would
(job "sentinel"): the metrics of RedisSentinelNoQuorum and RedisSentinelTilt, the
quorum lost when two of the three Sentinels stop, the allow-list, and where the
monitor user's password is not. Also the Redis exporter beside it: logged in on
every image (its password file's keys changed with exporter 1.69, Debian 13)."""

import re

import pytest
from testinfra.host import Host

from redisops_testlib.ha import Ha, Node
from redisops_testlib.hosts import get_host, hosts_in_group
from redisops_testlib.monitoring import exporter_environ, http_get
from redisops_testlib.polling import wait_for

# roles/exporters: the Sentinel exporter's port (defaults), unit and files (vars).
PORT = 9355
REDIS_EXPORTER_PORT = 9121
BLACKBOX_PORT = 9115
UNIT = "prometheus-redis-exporter-sentinel"
CONF_DIR = "/etc/prometheus-redis-exporter-sentinel"
CKQUORUM = re.compile(r'^redis_sentinel_master_ckquorum_status\{master_name="([^"]*)",message="([^"]*)"\} (\S+)$', re.M)


@pytest.fixture(scope="module")
def outsider(scenario) -> Host:
    return get_host(hosts_in_group(scenario, "outsiders")[0])


def _scrape(ha: Ha, node: Node) -> str:
    """The node's Sentinel exporter's metrics, fetched from the client host."""
    reply = http_get(ha.client, f"http://{node.address}:{PORT}/metrics")
    assert reply.startswith("200 "), (node.name, reply[:300])
    return reply


# The exporter's gauges of Sentinels usable and known, per master (every version).
OK_SENTINELS = re.compile(r'^redis_sentinel_master_ok_sentinels\{[^}]*master_name="([^"]*)"[^}]*\} (\S+)$', re.M)
SENTINELS = re.compile(r'^redis_sentinel_master_sentinels\{[^}]*master_name="([^"]*)"[^}]*\} (\S+)$', re.M)


def _quorum(ha: Ha, node: Node) -> tuple[bool, str]:
    """What the node's exporter says of the scenario's master's quorum, as
    RedisSentinelNoQuorum reads it (roles/monitoring/files/rules/redis.rules.yml):
    (quorum, why). redis_sentinel_master_ckquorum_status where the exporter has it
    (1.45+); Debian 11's 1.16 has not: there more than half the Sentinels usable."""
    metrics = _scrape(ha, node)
    checked = {m[0]: (float(m[2]), m[1]) for m in CKQUORUM.findall(metrics)}
    if checked or "ckquorum" in metrics:
        assert ha.master_name in checked, (node.name, checked)
        value, message = checked[ha.master_name]
        assert value in (0, 1), (node.name, value, message)
        assert message.startswith("OK" if value else "NOQUORUM"), (node.name, value, message)
        return value == 1, message
    usable = {m[0]: float(m[1]) for m in OK_SENTINELS.findall(metrics)}
    known = {m[0]: float(m[1]) for m in SENTINELS.findall(metrics)}
    assert ha.master_name in usable, (node.name, usable)
    assert ha.master_name in known, (node.name, known)
    ok, of = usable[ha.master_name], known[ha.master_name]
    return ok > of / 2, f"exporter without CKQUORUM: {ok:g} of {of:g} Sentinels usable"


def _all_ok(ha: Ha) -> bool:
    """Every Sentinel's exporter reports quorum with all three Sentinels usable."""
    states = {n.name: _quorum(ha, n) for n in ha.nodes}
    ok = all(q and (m.startswith("OK 3 usable") or m.endswith(" 3 of 3 Sentinels usable")) for q, m in states.values())
    if not ok:
        print(f"quorum per exporter: {states}")
    return ok


@pytest.mark.converged_state
def test_each_sentinel_exporter_reports_its_quorum_and_no_tilt(ha: Ha):
    for node in ha.nodes:
        metrics = _scrape(ha, node)
        # Logged in to the Sentinel (over TLS, as its monitor user) and seen it is one.
        assert "\nredis_up 1\n" in metrics, node.name
        assert "\nredis_sentinel_masters 1\n" in metrics, node.name
        assert "\nredis_sentinel_tilt 0\n" in metrics, node.name
    assert wait_for(lambda: _all_ok(ha), timeout=60)


@pytest.mark.converged_state
def test_each_nodes_redis_exporter_is_logged_in(ha: Ha):
    """The node's Redis exporter (TLS, app_monitor, --redis.password-file) reaches its
    Redis: what Prometheus's "redis" job scrapes."""
    for node in ha.nodes:
        reply = http_get(ha.client, f"http://{node.address}:{REDIS_EXPORTER_PORT}/metrics")
        assert reply.startswith("200 "), (node.name, reply[:300])
        assert "\nredis_up 1\n" in reply, (node.name, [line for line in reply.splitlines() if "error" in line])


@pytest.mark.converged_state
def test_each_nodes_blackbox_exporter_probes_its_redis_over_tls(ha: Ha):
    """The blackbox exporter beside each node runs with the modules written for its
    release (roles/exporters: no_follow_redirects before 0.19, which Debian 11's 0.18
    needs: it refuses follow_redirects and does not start), and its tcp_redis_tls probe
    of the node's Redis succeeds: what Prometheus's job redis_tls asks
    (playbooks/group_vars/all/monitoring.yml)."""
    assert ha.tls, "the ha scenario serves TLS: its nodes run the probe"
    for node in ha.nodes:
        assert node.host.service("prometheus-blackbox-exporter").is_running, node.name
        target = f"{node.name}:{ha.redis_port}"
        reply = http_get(ha.client, f"http://{node.address}:{BLACKBOX_PORT}/probe?module=tcp_redis_tls&target={target}")
        assert reply.startswith("200 "), (node.name, reply[:300])
        assert "\nprobe_success 1\n" in reply, (node.name, reply)


@pytest.mark.converged_state
def test_the_sentinel_exporter_needs_no_more_than_the_monitor_user_may(ha: Ha):
    """A scrape costs the monitor user no ACL denial on the Sentinel (what the exporter
    sends is allowed), and the user still may not change the Sentinel. On 6.2+: Sentinel
    6.0 has no ACL, so the exporter logs in with the shared password and no user name
    (what is asserted there), which may run every Sentinel command."""
    if not ha.sentinel_acl:
        for node in ha.nodes:
            ps = node.host.check_output("for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done")
            assert "--redis.user= " in ps, node.name
            assert "\nredis_up 1\n" in _scrape(ha, node), node.name
        return
    for node in ha.nodes:
        node.host.check_output("redis-sentinel-admin ACL LOG RESET")
        _scrape(ha, node)
        _scrape(ha, node)
        log = node.host.check_output("redis-sentinel-admin ACL LOG")
        assert "monitor" not in log.split(), (node.name, log)
        cli = ha.sentinel(node)
        monitor = ha.sentinel_passwords["monitor"]
        for command in (
            ["SENTINEL", "SET", ha.master_name, "quorum", "1"],
            ["SENTINEL", "FAILOVER", ha.master_name],
            ["SENTINEL", "RESET", "*"],
            ["SENTINEL", "CONFIG", "GET", "*"],
        ):
            assert "NOPERM" in cli.out("monitor", monitor, *command), (node.name, command)
        # The log records the monitor user's denials: its silence above means none.
        assert "sentinel|reset" in node.host.check_output("redis-sentinel-admin ACL LOG")


@pytest.mark.converged_state
def test_the_sentinel_exporter_listens_on_the_private_address_for_the_client_host_only(ha: Ha, outsider: Host):
    for node in ha.nodes:
        listening = {line.split()[3] for line in node.host.check_output("ss -Hltn").splitlines()}
        assert f"{node.address}:{PORT}" in listening, (node.name, listening)
        assert not {f"0.0.0.0:{PORT}", f"*:{PORT}", f"[::]:{PORT}"} & listening
        assert _scrape(ha, node)
        assert "Connection refused" in http_get(outsider, f"http://{node.address}:{PORT}/metrics"), node.name


@pytest.mark.converged_state
def test_no_sentinel_monitor_password_in_ps_or_unit_properties(ha: Ha):
    # Sentinel 6.0: the shared password, the exporter's there.
    password = ha.sentinel_login("monitor")[1]
    for node in ha.nodes:
        host = node.host
        assert "\nredis_up 1\n" in _scrape(ha, node), node.name
        ps = host.check_output("for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done")
        assert f"--redis.password-file={CONF_DIR}/password.json" in ps
        assert "--redis.addr=rediss://" in ps
        assert password not in ps
        environ = exporter_environ(host, UNIT)
        assert "ARGS=--web.listen-address=" in environ
        assert password not in environ
        assert password not in host.check_output(f"systemctl show {UNIT}")
        for path in (f"{CONF_DIR}/password.json", f"{CONF_DIR}/tls/client.key"):
            secret = host.file(path)
            assert (secret.user, secret.group, secret.mode) == ("root", "prometheus", 0o640), path


def test_two_stopped_sentinels_show_no_quorum_at_the_third_ones_exporter(ha: Ha):
    assert wait_for(lambda: _all_ok(ha), timeout=60)
    *stopped, remaining = ha.nodes
    try:
        for node in stopped:
            node.host.check_output("systemctl stop redis-sentinel")
        # The remaining Sentinel marks its peers down after down-after; CKQUORUM then
        # fails (where the exporter lacks it: 1 of 3 usable).
        quorum, message = wait_for(lambda: _no_quorum(ha, remaining), timeout=60, interval=1)
        print(f"{remaining.name} with two Sentinels stopped: quorum {quorum}, {message!r}")
        assert "NOQUORUM" in message or message.endswith(" 1 of 3 Sentinels usable"), message
    finally:
        for node in stopped:
            node.host.check_output("systemctl start redis-sentinel")
    # Back for the tests after this one: all three usable at every exporter.
    assert wait_for(lambda: _all_ok(ha), timeout=90, interval=1)


def _no_quorum(ha: Ha, node: Node) -> tuple[bool, str]:
    quorum, message = _quorum(ha, node)
    assert not quorum, f"not yet: {message}"
    return quorum, message
