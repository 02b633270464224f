"""Drill: an AOF damaged in the middle keeps Redis down; repair-aof.yml brings it back.

Runbook: docs/runbooks/redis-disk-aof.md
"""

from drill_lib import admin, key_count, ops_ok, ping, seed, wait_fsync

AOF_DIR = "/var/lib/redis/appendonlydir"


def _last_incr_file(server) -> str:
    manifest = server.file(f"{AOF_DIR}/appendonly.aof.manifest").content_string
    incr = [line.split()[1] for line in manifest.splitlines() if line.split()[-1] == "i"]
    return f"{AOF_DIR}/{incr[-1]}"


def _copies(server) -> list[str]:
    return server.run("ls -d /var/lib/redis.aof-before-repair-* 2>/dev/null").stdout.split()


def test_aof_damaged_in_the_middle_is_repaired_and_redis_starts(server):
    copies_before = _copies(server)
    seed(server, "app:aof")
    wait_fsync(server)
    before = key_count(server)
    server.check_output("systemctl stop redis-server")

    # The fault: garbage in the middle of the AOF (a torn tail alone would be
    # accepted by aof-load-truncated yes; this is not).
    incr = _last_incr_file(server)
    size = int(server.check_output(f"stat -c %s {incr}"))
    server.check_output(f"printf 'XXXXXXXX' | dd of={incr} bs=1 seek={size // 2} conv=notrunc status=none")
    start = server.run("systemctl start redis-server")
    assert start.rc != 0
    journal = server.check_output("journalctl -u redis-server -n 50 --no-pager -o cat")
    assert "Bad file format reading the append only file" in journal

    out = ops_ok("repair-aof")
    assert "repaired: cut" in out
    assert ping(server) == "PONG"
    after = key_count(server)
    lost = before - after
    print(f"aof repair: {before} keys before the damage, {after} after the repair, lost {lost}")
    # Everything before the damaged point is back; what came after it is lost.
    assert 0 < after < before
    assert admin(server, "GET", "app:aof:s:0") == "v0"
    # The damaged AOF was kept before the repair.
    assert len(_copies(server)) == len(copies_before) + 1


def test_repair_aof_on_a_healthy_aof_changes_nothing(server):
    out = ops_ok("repair-aof")
    assert "was valid: nothing repaired" in out
    assert "changed=0" in out
    assert ping(server) == "PONG"
