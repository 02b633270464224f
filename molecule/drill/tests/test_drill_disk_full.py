"""Drill: the Redis data disk fills up; Redis refuses writes (MISCONF); freeing
space as the runbook says brings writes back, and no acknowledged write is lost.

The data dir of redis-drill is a 64 MB tmpfs of its own (molecule.yml), so
filling it touches nothing else. The cause: a stray temp-<pid>.rdb, as a save
child killed mid-write leaves behind.

Runbook: docs/runbooks/redis-disk-aof.md (Disk full or AOF rewrite / RDB save failing)
"""

import contextlib
import re

from redisops_testlib.hosts import journal
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import admin, delete_keys, info, ping

DATA_DIR = "/var/lib/redis"
STRAY = f"{DATA_DIR}/temp-999999.rdb"


def _missing(server, keys: list[int]) -> list[int]:
    """Acknowledged keys that are gone or hold another value."""
    missing = []
    for start in range(0, len(keys), 200):
        batch = keys[start : start + 200]
        values = admin(server, "MGET", *[f"app:disk:{i}" for i in batch]).splitlines()
        missing += [i for i, v in zip(batch, values, strict=True) if v != f"value-{i}-" + "x" * 200]
    return missing


def _take_all_free_space(server) -> None:
    """A stray file of every free block. Redis may write between df and fallocate (a
    Debian 13 run lost that race: ENOSPC): a try that comes up short goes again."""
    for _ in range(5):
        free_kib = int(server.check_output(f"df --output=avail -k {DATA_DIR} | tail -1"))
        if server.run(f"fallocate -l {free_kib}K {STRAY}").rc == 0:
            break
        server.run(f"rm -f {STRAY}")
    else:
        raise AssertionError(f"could not fill {DATA_DIR}: its free space kept shrinking")
    server.check_output(f"chown redis:redis {STRAY}")


def test_full_disk_refuses_writes_and_freeing_space_loses_nothing_acknowledged(server, remote, users, ops):
    password = users["app_data"]["password"]
    assert "tmpfs" in server.check_output(f"df --output=fstype {DATA_DIR}")
    try:
        before = remote.set_many("app_data", password, "app:disk", 0, 200)
        assert (len(before["acked"]), before["refused"]) == (200, {})

        # The fault: the disk is full.
        _take_all_free_space(server)
        during = remote.set_many("app_data", password, "app:disk", 200, 1200)
        refusals = " ".join(during["refused"])
        print(f"disk full: {len(during['acked'])} writes acknowledged, refused: {during['refused']}")
        assert "MISCONF" in refusals, during["refused"]
        assert len(during["acked"]) < 1000

        # Check, as the runbook says: status, df, the journal.
        out = ops.ok("status")
        assert re.search(r"last write err|rdb last save err", out), out
        assert server.check_output(f"df --output=pcent {DATA_DIR} | tail -1").strip() == "100%"
        log = journal(server, "redis-server", since=None, lines=100)
        # ENOSPC, or a short write (7.0 logs that when part of the buffer fit).
        assert re.search(r"No space left on device|Short write while writing to the AOF file", log), log

        # Fix 1: free the space (the stray file), then 2: let Redis persist again.
        server.check_output(f"rm {STRAY}")
        wait_for(lambda: info(server, "persistence").get("aof_last_write_status") == "ok", timeout=20)
        assert admin(server, "BGREWRITEAOF").startswith("Background append only file rewriting")
        idle = {"aof_rewrite_in_progress": "0", "aof_rewrite_scheduled": "0"}
        wait_for(lambda: idle.items() <= info(server, "persistence").items(), timeout=60)
        bgsave = admin(server, "BGSAVE", "SCHEDULE")
        assert "Background saving" in bgsave, bgsave
        wait_for(lambda: info(server, "persistence").get("rdb_bgsave_in_progress") == "0", timeout=60)

        # Verify: all three statuses ok, and the app user can write again.
        persistence = info(server, "persistence")
        statuses = [
            persistence[f] for f in ("rdb_last_bgsave_status", "aof_last_bgrewrite_status", "aof_last_write_status")
        ]
        assert statuses == ["ok", "ok", "ok"], persistence
        after = remote.set_many("app_data", password, "app:disk", 1200, 1300)
        assert (len(after["acked"]), after["refused"]) == (100, {})

        # Nothing acknowledged was lost, also across a restart (loaded from the AOF).
        acked = before["acked"] + during["acked"] + after["acked"]
        server.check_output("systemctl restart redis-server")
        wait_for(lambda: ping(server) == "PONG")
        assert _missing(server, acked) == []
        # What was refused was not written.
        refused = sorted(set(range(200, 1200)) - set(during["acked"]))
        assert admin(server, "EXISTS", *[f"app:disk:{i}" for i in refused[:200]]) == "0"
    finally:
        server.run(f"rm -f {STRAY}")
        with contextlib.suppress(AssertionError):
            delete_keys(server, "app:disk:*")
