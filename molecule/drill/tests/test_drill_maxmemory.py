"""Drill: Redis at maxmemory with noeviction refuses writes; find the big key, free it.

Runbook: docs/runbooks/redis-maxmemory.md
"""

import re

from drill_lib import admin, ops_ok
from redis_testlib import server_version


def _info(server, field: str) -> str:
    return re.search(rf"^{field}:(\S+)", admin(server, "INFO", "memory"), re.MULTILINE).group(1)


def _app_writes_1mb(client, remote, password: str) -> str:
    """The app user SETs a 1 MB value over the network (value on stdin, not argv)."""
    r = client.run(
        f"head -c 1000000 /dev/zero | tr '\\0' y | REDISCLI_AUTH={password} redis-cli --no-auth-warning "
        f"-h {remote.address} -p {remote.port} --user app_data -x SET app:mm:new"
    )
    return (r.stdout + r.stderr).strip()


def test_full_redis_refuses_writes_and_freeing_the_big_key_recovers(server, client, remote, users):
    app = users["app_data"]["password"]
    limit = admin(server, "CONFIG", "GET", "maxmemory").splitlines()[-1]
    # The cause: one stray 4 MB key.
    server.check_output("head -c 4000000 /dev/zero | tr '\\0' x | redis-admin -x SET app:mm:stray")
    try:
        # The fault: the limit sits just above what Redis now uses.
        used = int(_info(server, "used_memory"))
        assert admin(server, "CONFIG", "SET", "maxmemory", str(used + 256 * 1024)) == "OK"
        assert "OOM command not allowed" in _app_writes_1mb(client, remote, app)
        assert _info(server, "maxmemory_policy") == "noeviction"
        assert admin(server, "EXISTS", "app:mm:stray") == "1"  # nothing was evicted

        # Check: status shows the OOM errors; --bigkeys names the culprit.
        out = ops_ok("status")
        if server_version(server) >= (6, 2):
            assert re.search(r"oom errors count=[1-9]", out), out
        else:  # no errorstats in INFO before 6.2: the memory line tells
            assert re.search(r"memory used \S+ of maxmemory \S+ \((9\d|1\d\d)%\)", out), out
        assert '"app:mm:stray"' in server.check_output("redis-admin --bigkeys")
        assert int(admin(server, "MEMORY", "USAGE", "app:mm:stray")) > 4_000_000

        # Fix: free it; writes work again.
        assert admin(server, "UNLINK", "app:mm:stray") == "1"
        assert _app_writes_1mb(client, remote, app) == "OK"
    finally:
        admin(server, "CONFIG", "SET", "maxmemory", limit)
        admin(server, "UNLINK", "app:mm:stray", "app:mm:new")
