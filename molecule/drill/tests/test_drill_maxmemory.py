"""Drill: Redis at maxmemory with noeviction refuses writes; find the big key, free it.

Runbook: docs/runbooks/redis-maxmemory.md
"""

import re

from redisops_testlib.hosts import server_version
from redisops_testlib.redis_cli import admin, info


def _app_writes_1mb(remote, password: str) -> str:
    """The app user SETs a 1 MB value over the network (value on stdin, not argv)."""
    return remote.out("app_data", password, "-x", "SET", "app:mm:new", stdin="head -c 1000000 /dev/zero | tr '\\0' y")


def test_full_redis_refuses_writes_and_freeing_the_big_key_recovers(server, remote, users, ops):
    app = users["app_data"]["password"]
    limit = admin(server, "CONFIG", "GET", "maxmemory").splitlines()[-1]
    # The cause: one stray 4 MB key.
    admin(server, "-x", "SET", "app:mm:stray", stdin="head -c 4000000 /dev/zero | tr '\\0' x")
    try:
        # The fault: the limit sits just above what Redis now uses.
        used = int(info(server, "memory")["used_memory"])
        assert admin(server, "CONFIG", "SET", "maxmemory", str(used + 256 * 1024)) == "OK"
        assert "OOM command not allowed" in _app_writes_1mb(remote, app)
        assert info(server, "memory")["maxmemory_policy"] == "noeviction"
        assert admin(server, "EXISTS", "app:mm:stray") == "1"  # nothing was evicted

        # Check: status shows the OOM errors; --bigkeys names the culprit.
        out = ops.ok("status")
        if server_version(server) >= (6, 2):
            assert re.search(r"oom errors count=[1-9]", out), out
        else:  # no errorstats in INFO before 6.2: the memory line tells
            assert re.search(r"memory used \S+ of maxmemory \S+ \((9\d|1\d\d)%\)", out), out
        assert '"app:mm:stray"' in admin(server, "--bigkeys")
        assert int(admin(server, "MEMORY", "USAGE", "app:mm:stray")) > 4_000_000

        # Fix: free it; writes work again.
        assert admin(server, "UNLINK", "app:mm:stray") == "1"
        assert _app_writes_1mb(remote, app) == "OK"
    finally:
        admin(server, "CONFIG", "SET", "maxmemory", limit)
        admin(server, "UNLINK", "app:mm:stray", "app:mm:new")
