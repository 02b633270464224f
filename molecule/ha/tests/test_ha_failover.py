"""Replication and failover on three Redis + Sentinel nodes, in order: replication,
NOREPLICAS past the lag bound, kill -9 of the master, the app's smoke on the new
master, the old master's rejoin and restart, then a converge that must change nothing."""

import itertools
import re
import time

from redisops_testlib.ha import Ha, Node, RoleSampler, app_pids, app_smoke
from redisops_testlib.playbooks import ansible_playbook
from redisops_testlib.polling import wait_for


def _master(ha: Ha) -> Node:
    """The master the Sentinels agree on, which is also the one node whose ROLE is master."""
    master = wait_for(ha.agreed_master, timeout=60)
    assert ha.masters() == [master.name]
    return master


# The master killed by the failover test, for the tests after it.
_killed: dict[str, Node] = {}
# The app's units (MainPID each) before that failover.
_app_before: dict[str, str] = {}


def _pid(node: Node) -> str:
    return node.host.check_output("systemctl show -p MainPID --value redis-server")


def test_replication_works(ha: Ha):
    master = _master(ha)
    assert master.name == ha.nodes[0].name, "the bootstrap primary is master after the converge"
    assert ha.app(master, "SET", "app:ha:replicated", "v1") == "OK"
    for node in ha.nodes[1:]:
        wait_for(lambda n=node: ha.app(n, "GET", "app:ha:replicated") == "v1", timeout=30)
        info = ha.replication(node)
        assert info["role"] == "slave", info
        assert info["master_host"] == master.address, info
        # A replica refuses writes.
        assert ha.app(node, "SET", "app:ha:x", "1").startswith("READONLY")
    assert ha.replication(master)["connected_slaves"] == "2"


def test_write_refused_with_noreplicas_when_replicas_lag_past_the_bound(ha: Ha):
    master = _master(ha)
    replicas = [n for n in ha.nodes if n != master]
    lag = ha.vars["redis_server_min_replicas_max_lag"]
    pids = {n.name: _pid(n) for n in replicas}
    try:
        for n in replicas:
            n.host.check_output(f"kill -STOP {pids[n.name]}")
        started, attempts = time.monotonic(), itertools.count()

        def refused() -> tuple[str, str] | None:
            # A key per attempt: the ones before the lag bound are accepted.
            key = f"app:ha:lagged:{next(attempts)}"
            reply = ha.app(master, "SET", key, "v")
            return (key, reply) if reply.startswith("NOREPLICAS") else None

        key, reply = wait_for(refused, timeout=lag + 20, interval=0.5)
        print(f"NOREPLICAS after {time.monotonic() - started:.1f} s (lag bound {lag} s): {reply}")
        assert ha.app(master, "EXISTS", key) == "0", "the refused write was not stored"
    finally:
        for n in replicas:
            n.host.run(f"kill -CONT {pids[n.name]}")
    wait_for(lambda: ha.app(master, "SET", "app:ha:lagged", "v") == "OK", timeout=lag + 30, interval=0.5)
    assert _master(ha) == master


def test_kill_9_of_the_master_elects_exactly_one_new_master(ha: Ha):
    old = _master(ha)
    assert ha.app(old, "SET", "app:ha:before-failover", "kept") == "OK"
    # Acknowledged by both replicas before the crash (WAIT), so a failover keeps it.
    assert old.host.check_output("redis-admin WAIT 2 5000") == "2"
    # Every app unit running (those that exited on NOREPLICAS above are back).
    _app_before.update(wait_for(lambda: app_pids(ha.client), timeout=60))
    old.host.check_output(f"kill -9 {_pid(old)}")
    _killed["master"] = old
    killed = time.monotonic()
    new = wait_for(lambda: (m := ha.agreed_master()) and m != old and m, timeout=ha.down_after_s + 30, interval=0.1)
    elapsed = time.monotonic() - killed
    live = [n for n in ha.nodes if n != old]
    masters = [n.name for n in live if ha.role(n) == "master"]
    print(
        f"FAILOVER: master {old.name} killed (-9); {new.name} named by every Sentinel after {elapsed:.1f} s "
        f"(down-after {ha.down_after_s:.0f} s, bound {ha.down_after_s + 10:.0f} s); masters now: {masters}"
    )
    assert elapsed <= ha.down_after_s + 10
    wait_for(lambda: [n.name for n in live if ha.role(n) == "master"] == [new.name], timeout=20)
    assert ha.app(new, "GET", "app:ha:before-failover") == "kept"
    other = next(n for n in live if n != new)
    wait_for(lambda: ha.replication(other).get("master_host") == new.address, timeout=30)
    wait_for(lambda: ha.app(new, "SET", "app:ha:after-failover", "v") == "OK", timeout=30)


def test_the_app_passes_smoke_after_the_failover_without_a_restart(ha: Ha):
    # Every process asks the Sentinels again: the same processes, on the new master.
    assert _killed["master"] != _master(ha)
    app_smoke()
    assert app_pids(ha.client) == _app_before, "no app unit restarted"


def test_the_crashed_master_rejoins_as_a_replica(ha: Ha):
    master, old = _master(ha), _killed["master"]
    assert master != old
    # systemd restarts it after redis_server_replication_restart_sec; its start
    # helper asks the Sentinels, who name the new master.
    restart = ha.vars["redis_server_replication_restart_sec"]
    info = wait_for(
        lambda: (i := ha.replication(old)).get("master_link_status") == "up" and i, timeout=restart + 60, interval=1
    )
    assert info["role"] == "slave", info
    assert info["master_host"] == master.address, info
    topology = old.host.file("/run/redis-topology/topology.conf").content_string
    print(f"old master's topology at its restart: {topology!r}")
    assert f"replicaof {master.address} {ha.redis_port}" in topology
    assert "Sentinels" in topology
    assert ha.masters() == [master.name]
    wait_for(lambda: ha.app(old, "GET", "app:ha:after-failover") == "v", timeout=30)


def test_restarting_the_old_master_never_shows_two_masters(ha: Ha):
    master, old = _master(ha), _killed["master"]
    pid_before = _pid(old)
    sampler = RoleSampler(ha, "restart-old-master")
    try:
        sampler.wait_started()
        time.sleep(0.5)
        restarted_ms = time.time() * 1000
        old.host.check_output("systemctl restart redis-server")
        wait_for(lambda: ha.replication(old).get("master_link_status") == "up", timeout=60)
        linked_ms = time.time() * 1000
        time.sleep(1)
    finally:
        samples = sampler.stop()
    masters_per_sample = [sum(role == "master" for role in s[1:]) for s in samples]
    downs = sum("down" in s[1:] for s in samples)
    span = (int(samples[-1][0]) - int(samples[0][0])) / 1000 if samples else 0
    print(f"sampled ROLE of {len(ha.nodes)} nodes {len(samples)} times over {span:.1f} s; old master down in {downs}")
    # The samples cover the restart: it happened (a new pid), and sampling ran from
    # before it until after the link was up (the hosts share the machine's clock). A
    # fast restart may fall between two samples: "down" need not be seen.
    assert _pid(old) != pid_before, "redis-server was restarted"
    assert len(samples) >= 10, "the samples must cover the restart"
    assert int(samples[0][0]) <= restarted_ms, ("sampling began after the restart", samples[0], restarted_ms)
    assert int(samples[-1][0]) >= linked_ms, ("sampling ended before the link was up", samples[-1], linked_ms)
    assert max(masters_per_sample) == 1, [s for s, m in zip(samples, masters_per_sample, strict=True) if m > 1][:5]
    assert all(s[1 + ha.nodes.index(old)] != "master" for s in samples)
    assert _master(ha) == master


def test_converge_after_the_failover_changes_nothing_and_keeps_the_master(ha: Ha, scenario):
    master = _master(ha)
    epochs = {n.name: ha.sentinel_state(n)["config-epoch"] for n in ha.nodes}
    pids = {n.name: _pid(n) for n in ha.nodes}
    proc = ansible_playbook(scenario.converge)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", proc.stdout, re.M)
    print(f"converge after the failover: {recap}")
    assert recap, proc.stdout[-2000:]
    assert all(c == "0" for _, c in recap), proc.stdout[-6000:]
    assert _master(ha) == master
    assert {n.name: _pid(n) for n in ha.nodes} == pids, "nothing restarted"
    assert {n.name: ha.sentinel_state(n)["config-epoch"] for n in ha.nodes} == epochs
    print(f"config-epoch per Sentinel, unchanged: {epochs}")
