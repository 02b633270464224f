"""Drill: an AOF damaged in the middle keeps Redis down; repair-aof.yml brings it back.

Runbook: docs/runbooks/redis-disk-aof.md
"""

import pytest

from redisops_testlib.drill import aof_commands, fingerprint, seed, wait_fsync
from redisops_testlib.hosts import journal
from redisops_testlib.redis_cli import admin, delete_keys, ping

# Every test here runs with the checkers' runs recorded (conftest.py: check_runs).
pytestmark = pytest.mark.usefixtures("check_runs")

AOF_DIR = "/var/lib/redis/appendonlydir"
PREFIX = "app:aof"


def _aof_file(server) -> str:
    """The file new writes go to: the last incr file of the manifest (7.0+),
    else the single appendonly.aof (6.x)."""
    manifest = server.file(f"{AOF_DIR}/appendonly.aof.manifest")
    if not manifest.exists:
        return "/var/lib/redis/appendonly.aof"
    # Each line is key value pairs: "file <name> seq <n> type i" on 7.x; 8.x
    # appends more pairs (start/end offsets), so read the pairs, not positions.
    entries = [
        dict(zip(words[::2], words[1::2], strict=False))
        for words in map(str.split, manifest.content_string.splitlines())
    ]
    incr = [entry["file"] for entry in entries if entry.get("type") == "i"]
    assert incr, f"no incr file in the manifest: {manifest.content_string!r}"
    return f"{AOF_DIR}/{incr[-1]}"


def _size(server, path: str) -> int:
    return int(server.check_output(f"stat -c %s {path}"))


def _copies(server) -> list[str]:
    return server.run("ls -d /var/lib/redis.aof-before-repair-* 2>/dev/null").stdout.split()


def _keys_written(commands: list[tuple[int, list[bytes]]]) -> set[str]:
    """The drill's keys among the commands' first arguments (SET, HSET, RPUSH, SADD, XADD key ...)."""
    keys = {words[1].decode(errors="replace") for _, words in commands if len(words) > 1}
    return {k for k in keys if k.startswith(f"{PREFIX}:")}


def test_aof_damaged_in_the_middle_is_repaired_and_redis_starts(server, ops):
    copies_before = _copies(server)
    delete_keys(server, f"{PREFIX}:*")  # a run before this one left them
    aof = _aof_file(server)
    size_before = _size(server, aof)
    seed(server, PREFIX)
    wait_fsync(server)
    before = fingerprint(server, f"{PREFIX}:*")[0]
    server.check_output("systemctl stop redis-server")

    # What the seed appended, read before the damage: each command and where it starts.
    appended = server.run(f"tail -c +{size_before + 1} {aof}").stdout_bytes
    commands = aof_commands(appended, offset=size_before)
    # The fault: garbage in the middle of what the seed appended (a torn tail
    # alone would be accepted by aof-load-truncated yes; this is not), at the
    # start of a SET, so the garbage breaks the format (inside a value it
    # would only change the value). Not in the file's first half: on 6.x that
    # is the RDB preamble, which no tool repairs.
    middle = size_before + len(appended) // 2
    sets = [at for at, words in commands if words[0].upper() == b"SET" and words[1].startswith(b"app:aof:s:")]
    offset = next(at for at in sets if at >= middle)
    written_before = _keys_written([c for c in commands if c[0] < offset])
    written_after = _keys_written([c for c in commands if c[0] >= offset])
    server.check_output(f"printf 'XXXXXXXX' | dd of={aof} bs=1 seek={offset} conv=notrunc status=none")
    assert server.run("systemctl start redis-server").rc != 0
    assert "Bad file format reading the append only file" in journal(server, "redis-server", since=None, lines=50)

    out = ops.ok("repair-aof")
    assert "repaired: cut" in out
    assert ping(server) == "PONG"
    survivors = set(admin(server, "--scan", "--pattern", f"{PREFIX}:*").split())
    lost = (written_before | written_after) - survivors
    print(f"aof repair: {before} keys, {len(survivors)} after the repair; lost {len(lost)} of {len(written_after)}")
    # Everything written before the damaged point is back; only what the cut
    # removed (written at or after it) is lost, and the cut did remove some.
    assert written_before <= survivors, sorted(written_before - survivors)[:10]
    assert lost <= written_after, sorted(lost - written_after)[:10]
    assert lost
    assert admin(server, "GET", f"{PREFIX}:s:0") == "v0"
    # The damaged AOF was kept before the repair.
    assert len(_copies(server)) == len(copies_before) + 1


def test_repair_aof_on_a_healthy_aof_changes_nothing(server, ops):
    out = ops.ok("repair-aof")
    assert "was valid: nothing repaired" in out
    assert "changed=0" in out
    assert ping(server) == "PONG"


def test_the_aof_was_checked_and_cut_by_the_redis_user_never_root(check_runs):
    """The AOF is Redis's to write: a parser bug in redis-check-aof fed a crafted file must
    not run as root. Every run of the repair drills above, --fix included, was the redis user's."""
    runs = [r for r in check_runs() if r[2].startswith("redis-check-aof")]
    print(f"redis-check-aof runs: {runs}")
    assert any(" --fix " in f" {cmd} " for _, _, cmd in runs), runs
    assert len(runs) >= 4, runs  # damaged: check, --fix, check again; healthy: check
    assert {user for _, user, _ in runs} == {"redis"}, runs
