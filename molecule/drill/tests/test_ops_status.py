"""status.yml: one screen per host with what the runbooks check first, and the app's
queues, workers, stream and beat.

Runbook: docs/runbooks/redis-maxmemory.md (Check) and docs/runbooks/README.md
"""

import re


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


def test_status_shows_the_apps_queues_workers_stream_and_beat(ops, app_host):
    out = ops.ok("status", limit="all")
    name = app_host.backend.get_hostname()
    assert re.search(r"queues default \d+, heavy \d+ waiting; \d+ reserved by workers", out), out[-3000:]
    assert f"workers default@{name}, heavy@{name}" in out
    # Redis 6.0 reports no lag.
    lag = r"(\d+|n/a \(Redis < 7\.0\))"
    assert re.search(
        rf"stream app:stream:events group workers: length \d+, lag {lag}, pending \d+, consumers [1-9]", out
    )
    assert re.search(r"beat heartbeat \d+s old \(max \d+s\)", out)
    assert "changed=0" in out
