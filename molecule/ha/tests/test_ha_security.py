"""Sentinel and Redis as other hosts meet them: closed until configured, TLS only (the
plaintext ports refused, a client without a certificate from the CA refused at the
handshake), dropped for a host in no allow-list, no anonymous access, and the client user
cannot reconfigure or fail over the fleet."""

import shlex

import pytest
from testinfra.host import Host

from redisops_testlib.ha import Ha
from redisops_testlib.hosts import STATE_DIR, get_host, hosts_in_group, run_client
from redisops_testlib.polling import wait_for

# The ports Redis and Sentinel would serve in plain text (their TLS ports serve instead).
PLAIN_PORTS = {"redis": 6379, "sentinel": 26379}


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
        for port, table in ((ha.sentinel_port, "redis_sentinel"), (ha.redis_port, "redis_server")):
            assert run_client(ha.client, "connect", address=node.address, port=port, timeout=5) == "open"
            before = _dropped(node.host, table)
            tried = run_client(outsider, "connect", address=node.address, port=port, timeout=3)
            print(f"outsider -> {node.name}:{port}: {tried}")
            assert tried == "timeout", (node.name, port, tried)
            assert _dropped(node.host, table) > before, (node.name, table)


def test_the_scenario_runs_redis_and_sentinel_over_tls(ha: Ha):
    # What every other test of the scenario goes through: TLS ports, the client's certificate.
    assert (ha.redis_port, ha.sentinel_port) == (6380, 26380)
    assert ha.tls
    assert ha.redis(ha.nodes[0]).tls == ha.tls
    assert ha.sentinel(ha.nodes[0]).tls == ha.tls


@pytest.mark.converged_state
def test_the_plaintext_redis_and_sentinel_ports_refuse_connections(ha: Ha):
    # Tried from the client host, which the allow-lists admit: nothing listens on the
    # plaintext ports (connection refused, not dropped), while the TLS ports answer.
    for node in ha.nodes:
        listening = node.host.check_output("ss -Hltn")
        local = {line.split()[3].rsplit(":", 1)[1] for line in listening.splitlines()}
        assert {str(ha.redis_port), str(ha.sentinel_port)} <= local, (node.name, listening)
        assert not local & {str(p) for p in PLAIN_PORTS.values()}, (node.name, listening)
        for what, port in PLAIN_PORTS.items():
            tried = run_client(ha.client, "connect", address=node.address, port=port, timeout=5)
            print(f"client -> {node.name}:{port} ({what}, plain text): {tried}")
            assert tried == "refused", (node.name, port, tried)
        for port in (ha.redis_port, ha.sentinel_port):
            assert run_client(ha.client, "connect", address=node.address, port=port, timeout=5) == "open"


@pytest.fixture(scope="module")
def foreign_certificate(ha: Ha) -> dict[str, str]:
    """A client certificate and key from a CA of its own (self-signed), on the client host."""
    cert, key = f"{STATE_DIR}/foreign-client.crt", f"{STATE_DIR}/foreign-client.key"
    ha.client.check_output(
        f"mkdir -p {STATE_DIR} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        f" -keyout {key} -out {cert} -subj /CN=foreign-client -days 1 2>&1"
    )
    return {"REDIS_TLS_CA": ha.tls["REDIS_TLS_CA"], "REDIS_TLS_CERT": cert, "REDIS_TLS_KEY": key}


@pytest.mark.converged_state
def test_a_tls_client_without_a_certificate_from_the_ca_is_refused(ha: Ha, foreign_certificate):
    """A client that verifies the server but shows no certificate gets TLS 1.3's
    certificate_required alert, one with a certificate from another CA unknown_ca, from
    Redis and from Sentinel, before it can send a command; the app's certificate (from
    the scenario's CA) is accepted: the server waits for a command."""
    no_cert = {"REDIS_TLS_CA": ha.tls["REDIS_TLS_CA"]}
    for node in ha.nodes:
        for what, port in (("redis", ha.redis_port), ("sentinel", ha.sentinel_port)):
            replies = {
                name: run_client(ha.client, "tls_hello", env, address=node.address, port=port)
                for name, env in (("none", no_cert), ("foreign", foreign_certificate), ("ours", ha.tls))
            }
            print(f"{node.name}:{port} ({what}) TLS client certificate -> {replies}")
            assert replies == {
                "none": "TLSV13_ALERT_CERTIFICATE_REQUIRED",
                "foreign": "TLSV1_ALERT_UNKNOWN_CA",
                "ours": "waiting",
            }, (node.name, what)


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
    """On 6.2+. Sentinel 6.0 has no ACL, so this cannot hold there: every client holds the
    one shared password, which may SET, FAILOVER and RESET; what holds on 6.0 instead is
    test_sentinel_6_0_refuses_any_other_login_than_the_shared_password."""
    if not ha.sentinel_acl:
        reply = ha.sentinel(ha.nodes[0]).out("sentinel-client", ha.sentinel_passwords["client"], "PING")
        print(f"Sentinel 6.0, no ACL: the client user's login -> {reply}")
        assert reply.startswith("NOAUTH"), reply
        return
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


@pytest.mark.converged_state
def test_sentinel_6_0_refuses_any_other_login_than_the_shared_password(ha: Ha):
    """Sentinel 6.0 (no ACL): what holds instead of least privilege. Without the shared
    password every command gets NOAUTH, SENTINEL SET/FAILOVER/RESET included; a wrong
    password and any user name are refused; the shared password may run every command,
    SENTINEL SET included (the limit roles/redis_sentinel/README.md states: whoever holds
    it can reconfigure or fail over the fleet). On 6.2+ the Sentinels refuse that
    password: the scenario sets none there (the role refuses one)."""
    shared = ha.sentinel_passwords["shared"]
    quorum = str(ha.vars.get("redis_sentinel_quorum", 2))
    for node in ha.nodes:
        cli = ha.sentinel(node)
        if ha.sentinel_acl:
            reply = cli.out("", shared, "PING")
            print(f"{node.name} (Sentinel with ACL): the 6.0 shared password -> {reply}")
            assert "WRONGPASS" in reply, (node.name, reply)
            assert reply.startswith("NOAUTH"), (node.name, reply)
            continue
        for args in (
            ["PING"],
            ["SENTINEL", "SET", ha.master_name, "quorum", "1"],
            ["SENTINEL", "FAILOVER", ha.master_name],
            ["SENTINEL", "RESET", "*"],
        ):
            reply = cli.out(None, None, *args)
            assert reply.startswith("NOAUTH"), (node.name, args, reply)
        assert cli.out("", shared + "-wrong", "PING").startswith("NOAUTH"), node.name
        for user in ("default", "sentinel-client", "monitor", "admin"):
            assert cli.out(user, shared, "PING").startswith("NOAUTH"), (node.name, user)
        assert cli.out("", shared, "PING") == "PONG", node.name
        # The same quorum again: allowed, and nothing changes.
        assert cli.out("", shared, "SENTINEL", "SET", ha.master_name, "quorum", quorum) == "OK", node.name
        assert ha.sentinel_state(node)["quorum"] == quorum, node.name


@pytest.mark.converged_state
def test_the_nodes_acl_file_drops_no_transaction_or_script_at_a_restart(ha: Ha):
    """Redis replays the AOF at start as the default user, and EXEC re-checks ACLs on 7.0
    (redis/redis#14541): a default user without +@all would drop every MULTI/EXEC and Lua
    effect at each restart. On 6.0 the default user of an HA node is on with Sentinel's
    commands only (roles/redis_server/README.md, "Redis 6.0 in an HA group"): 6.0 replays
    as no user, so nothing is dropped. Tried with the node's own ACL file and Redis
    binary: a throwaway server on the loopback, written to, restarted, read back."""
    node = ha.nodes[0]
    acl = node.host.check_output("grep '^user default ' /etc/redis/users.acl")
    print(f"{node.name} (Redis {'6.2+' if ha.sentinel_acl else '6.0'}): {acl.split(' #')[0]} ...")
    assert ("-@all" in acl) == (not ha.sentinel_acl), acl
    work = f"{STATE_DIR}/aof-replay"
    start = (
        f"redis-server --port 7390 --bind 127.0.0.1 --dir {work} --appendonly yes --save ''"
        f" --aclfile /etc/redis/users.acl --daemonize yes --logfile {work}/log"
    )
    cli = "REDISCLI_AUTH=$(cat /etc/redis/admin.secret) redis-cli --no-auth-warning -p 7390 --user admin"
    node.host.check_output(f"rm -rf {work} && mkdir -p {work} && {start}")
    try:
        wait_for(lambda: node.host.run(f"{cli} PING").stdout.strip() == "PONG", timeout=20)
        script = "MULTI\nSET tx:a 1\nINCR tx:b\nEXEC\nEVAL \"redis.call('set', 'tx:c', '3')\" 0\n"
        node.host.check_output(f"printf %s {shlex.quote(script)} | {cli}")
        node.host.check_output(f"{cli} SHUTDOWN; sleep 1; {start}")
        wait_for(lambda: node.host.run(f"{cli} PING").stdout.strip() == "PONG", timeout=20)
        assert node.host.check_output(f"{cli} MGET tx:a tx:b tx:c").split() == ["1", "1", "3"]
    finally:
        node.host.run(f"{cli} SHUTDOWN NOSAVE; rm -rf {work}")
