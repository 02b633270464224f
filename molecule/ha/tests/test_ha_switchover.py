"""The planned switchover (playbooks/ops/redis-switchover.yml, runbook
docs/runbooks/redis-failover.md), after the failover tests: one new master, the old
one replicates from it, data kept."""

import time

from redisops_testlib.ha import Ha
from redisops_testlib.playbooks import Ops
from redisops_testlib.polling import wait_for


def test_switchover_playbook_moves_the_master_and_the_old_one_follows(ha: Ha):
    before = wait_for(ha.agreed_master, timeout=60)
    assert ha.app(before, "SET", "app:ha:before-switchover", "kept") == "OK"
    assert before.host.check_output("redis-admin WAIT 2 5000") == "2"
    started = time.monotonic()
    out = Ops(before.name).ok("redis-switchover", limit="redis_sentinels")
    took = time.monotonic() - started
    after = wait_for(ha.agreed_master, timeout=30)
    print(f"SWITCHOVER: {before.name} -> {after.name}, playbook {took:.1f} s")
    assert after != before
    assert "the old master replicates from the new one" in out
    assert ha.masters() == [after.name]
    info = ha.replication(before)
    assert info["role"] == "slave", info
    assert info["master_host"] == after.address, info
    assert ha.app(after, "GET", "app:ha:before-switchover") == "kept"
    assert ha.app(after, "SET", "app:ha:after-switchover", "v") == "OK"


def test_switchover_refuses_when_a_sentinel_does_not_answer(ha: Ha):
    # The two others would agree; the playbook still asks no Sentinel anything.
    master = wait_for(ha.agreed_master, timeout=60)
    stopped = ha.nodes[0]
    stopped.host.check_output("systemctl stop redis-sentinel")
    try:
        proc = Ops(master.name).run("redis-switchover", limit="redis_sentinels")
    finally:
        stopped.host.check_output("systemctl start redis-sentinel")
    assert proc.returncode != 0
    assert "Could not connect" in proc.stdout, proc.stdout[-3000:]
    assert "Ask one Sentinel for the switchover" not in proc.stdout
    assert wait_for(ha.agreed_master, timeout=60) == master
