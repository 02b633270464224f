"""Drill: the Redis data disk fills up; Redis refuses writes (MISCONF); freeing
space as the runbook says brings writes back, and no acknowledged write is lost.

The data dir of redis-drill is a 64 MB tmpfs of its own (molecule.yml), so
filling it touches nothing else. The cause: a stray temp-<pid>.rdb, as a save
child killed mid-write leaves behind.

Runbook: docs/runbooks/redis-disk-aof.md (Disk full or AOF rewrite / RDB save failing)
"""

import json
import re

from drill_lib import admin, ops_ok, wait_for

DATA_DIR = "/var/lib/redis"
STRAY = f"{DATA_DIR}/temp-999999.rdb"

# One connection as the app user, SETs prefix:<i> for i in range, and records
# which were acknowledged (+OK) and what the refusals said. Python stdlib only.
WRITER = r"""
import json, socket, sys
addr, port, user, pw, prefix, first, last = sys.argv[1:8]
def resp(*a):
    return ("*%d\r\n" % len(a) + "".join("$%d\r\n%s\r\n" % (len(x.encode()), x) for x in a)).encode()
s = socket.create_connection((addr, int(port)), timeout=10)
f = s.makefile("rb")
s.sendall(resp("AUTH", user, pw))
assert f.readline().strip() == b"+OK"
acked, refused = [], {}
for i in range(int(first), int(last)):
    s.sendall(resp("SET", "%s:%d" % (prefix, i), "value-%d-" % i + "x" * 200))
    reply = f.readline().strip().decode()
    if reply == "+OK":
        acked.append(i)
    else:
        refused[reply] = refused.get(reply, 0) + 1
print(json.dumps({"acked": acked, "refused": refused}))
"""


def _write(client, remote, password: str, first: int, last: int) -> dict:
    client.run(f"cat > /tmp/disk-writer.py <<'EOF'\n{WRITER}\nEOF")
    out = client.check_output(
        f"python3 /tmp/disk-writer.py {remote.address} {remote.port} app_data {password} "
        f"app:disk {first} {last}"
    )
    return json.loads(out)


def _persistence(server) -> dict[str, str]:
    return dict(re.findall(r"^(\w+):(\S+)", admin(server, "INFO", "persistence"), re.MULTILINE))


def _missing(server, keys: list[int]) -> list[int]:
    """Acknowledged keys that are gone or hold another value."""
    missing = []
    for start in range(0, len(keys), 200):
        batch = keys[start:start + 200]
        values = admin(server, "MGET", *[f"app:disk:{i}" for i in batch]).splitlines()
        missing += [i for i, v in zip(batch, values) if v != f"value-{i}-" + "x" * 200]
    return missing


def test_full_disk_refuses_writes_and_freeing_space_loses_nothing_acknowledged(server, client, remote, users):
    password = users["app_data"]["password"]
    assert "tmpfs" in server.check_output(f"df --output=fstype {DATA_DIR}")
    try:
        before = _write(client, remote, password, 0, 200)
        assert len(before["acked"]) == 200 and not before["refused"]

        # The fault: the disk is full.
        free_kib = int(server.check_output(f"df --output=avail -k {DATA_DIR} | tail -1"))
        server.check_output(f"fallocate -l {free_kib}K {STRAY} && chown redis:redis {STRAY}")
        during = _write(client, remote, password, 200, 1200)
        refusals = " ".join(during["refused"])
        print(f"disk full: {len(during['acked'])} writes acknowledged, refused: {during['refused']}")
        assert "MISCONF" in refusals, during["refused"]
        assert len(during["acked"]) < 1000

        # Check, as the runbook says: status, df, the journal.
        out = ops_ok("status")
        assert re.search(r"last write err|rdb last save err", out), out
        assert server.check_output(f"df --output=pcent {DATA_DIR} | tail -1").strip() == "100%"
        journal = server.check_output("journalctl -u redis-server -n 100 --no-pager -o cat")
        # ENOSPC, or a short write (7.0 logs that when part of the buffer fit).
        assert re.search(r"No space left on device|Short write while writing to the AOF file", journal), journal

        # Fix 1: free the space (the stray file), then 2: let Redis persist again.
        server.check_output(f"rm {STRAY}")
        wait_for(lambda: _persistence(server).get("aof_last_write_status") == "ok", timeout=20)
        assert admin(server, "BGREWRITEAOF").startswith("Background append only file rewriting")
        wait_for(lambda: _persistence(server).get("aof_rewrite_in_progress") == "0"
                 and _persistence(server).get("aof_rewrite_scheduled") == "0", timeout=60)
        bgsave = admin(server, "BGSAVE", "SCHEDULE")
        assert "Background saving" in bgsave, bgsave
        wait_for(lambda: _persistence(server).get("rdb_bgsave_in_progress") == "0", timeout=60)

        # Verify: all three statuses ok, and the app user can write again.
        info = _persistence(server)
        assert (info["rdb_last_bgsave_status"], info["aof_last_bgrewrite_status"],
                info["aof_last_write_status"]) == ("ok", "ok", "ok")
        after = _write(client, remote, password, 1200, 1300)
        assert len(after["acked"]) == 100 and not after["refused"]

        # Nothing acknowledged was lost, also across a restart (loaded from the AOF).
        acked = before["acked"] + during["acked"] + after["acked"]
        server.check_output("systemctl restart redis-server")
        wait_for(lambda: server.run("redis-admin PING").stdout.strip() == "PONG")
        assert _missing(server, acked) == []
        # What was refused was not written.
        refused = sorted(set(range(200, 1200)) - set(during["acked"]))
        assert admin(server, "EXISTS", *[f"app:disk:{i}" for i in refused[:200]]) == "0"
    finally:
        server.run(f"rm -f {STRAY}")
        server.run("redis-admin --scan --pattern 'app:disk:*' | xargs -r -n 500 redis-admin UNLINK >/dev/null")
