"""Drill: back up, lose everything (FLUSHALL), restore: every key comes back.

Runbook: docs/runbooks/redis-backup-restore.md
"""

from pathlib import Path

from drill_lib import admin, fingerprint, key_count, ops, ops_ok, seed


def test_restore_refuses_without_a_backup():
    proc = ops("restore-redis")
    assert proc.returncode != 0
    assert "No backup given" in proc.stdout


def test_restore_refuses_a_missing_backup(tmp_path):
    proc = ops("restore-redis", {"redis_backup": str(tmp_path / "nothing-here")})
    assert proc.returncode != 0
    assert "No backup found" in proc.stdout


def test_backup_flushall_restore_brings_every_key_back(server, tmp_path):
    seed(server, "app:br")
    before = fingerprint(server)
    assert before[0] >= 2004

    out = ops_ok("backup-redis", {"redis_backup_root": str(tmp_path)})
    backups = sorted(Path(tmp_path).glob("*/*/manifest.json"))
    assert len(backups) == 1, out
    backup = backups[0].parent
    assert str(backup) in out  # the playbook prints where the backup is

    # The fault: everything gone.
    assert admin(server, "FLUSHALL") == "OK"
    assert key_count(server) == 0

    out = ops_ok("restore-redis", {"redis_backup": str(backup)})
    after = fingerprint(server)
    print(f"restore: {before[0]} keys before, {after[0]} after; sha1 {before[1]} / {after[1]}")
    assert after == before
    # AOF is on again and the data came back from it after the restart.
    assert admin(server, "CONFIG", "GET", "appendonly").splitlines()[-1] == "yes"
    assert "loaded after a restart" in out
    assert not server.file("/run/systemd/system/redis-server.service.d/zz-ops-restore.conf").exists
