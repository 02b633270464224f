"""status.yml: one screen per host with what the runbooks check first.

Runbook: docs/runbooks/redis-maxmemory.md (Check) and docs/runbooks/README.md
"""


def test_status_shows_memory_persistence_and_keyspace(ops):
    out = ops.ok("status")
    assert "service active/running" in out
    assert "of maxmemory 256.00M" in out
    assert "policy noeviction" in out
    assert "aof enabled 1 last write ok" in out
    assert "rdb last save ok" in out
    assert "replication role master" in out
    assert "keyspace db0 keys=" in out
    assert "changed=0" in out
