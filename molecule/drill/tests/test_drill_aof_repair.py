"""Drill: an AOF damaged in the middle keeps Redis down; repair-aof.yml brings it back.

Runbook: docs/runbooks/redis-disk-aof.md
"""

from redisops_testlib.drill import fingerprint, seed, wait_fsync
from redisops_testlib.hosts import journal
from redisops_testlib.redis_cli import admin, ping

AOF_DIR = "/var/lib/redis/appendonlydir"


def _aof_file(server) -> str:
    """The file new writes go to: the last incr file of the manifest (7.0+),
    else the single appendonly.aof (6.x)."""
    manifest = server.file(f"{AOF_DIR}/appendonly.aof.manifest")
    if not manifest.exists:
        return "/var/lib/redis/appendonly.aof"
    incr = [line.split()[1] for line in manifest.content_string.splitlines() if line.split()[-1] == "i"]
    return f"{AOF_DIR}/{incr[-1]}"


def _size(server, path: str) -> int:
    return int(server.check_output(f"stat -c %s {path}"))


def _copies(server) -> list[str]:
    return server.run("ls -d /var/lib/redis.aof-before-repair-* 2>/dev/null").stdout.split()


def test_aof_damaged_in_the_middle_is_repaired_and_redis_starts(server, ops):
    copies_before = _copies(server)
    aof = _aof_file(server)
    size_before = _size(server, aof)
    seed(server, "app:aof")
    wait_fsync(server)
    before = fingerprint(server, "app:aof:*")[0]
    server.check_output("systemctl stop redis-server")

    # The fault: garbage in the middle of what the seed appended (a torn tail
    # alone would be accepted by aof-load-truncated yes; this is not). Not in
    # the file's first half: on 6.x that is the RDB preamble, which no tool
    # repairs. At the start of a command, so the garbage breaks the format
    # (inside a value it would only change the value).
    middle = (size_before + _size(server, aof)) // 2
    offset = int(
        server.check_output(
            'python3 -c \'import sys; print(open(sys.argv[1], "rb").read().index(b"*3\\r\\n$3\\r\\nSET\\r\\n", '
            f"int(sys.argv[2])))' {aof} {middle}"
        )
    )
    server.check_output(f"printf 'XXXXXXXX' | dd of={aof} bs=1 seek={offset} conv=notrunc status=none")
    assert server.run("systemctl start redis-server").rc != 0
    assert "Bad file format reading the append only file" in journal(server, "redis-server", since=None, lines=50)

    out = ops.ok("repair-aof")
    assert "repaired: cut" in out
    assert ping(server) == "PONG"
    after = fingerprint(server, "app:aof:*")[0]
    print(f"aof repair: {before} keys before the damage, {after} after the repair, lost {before - after}")
    # Everything before the damaged point is back; what came after it is lost.
    assert 0 < after < before
    assert admin(server, "GET", "app:aof:s:0") == "v0"
    # The damaged AOF was kept before the repair.
    assert len(_copies(server)) == len(copies_before) + 1


def test_repair_aof_on_a_healthy_aof_changes_nothing(server, ops):
    out = ops.ok("repair-aof")
    assert "was valid: nothing repaired" in out
    assert "changed=0" in out
    assert ping(server) == "PONG"
