"""Drill: back up, lose everything (FLUSHALL), restore: every key comes back;
and back up one host, restore on a new one.

Runbook: docs/runbooks/redis-backup-restore.md
"""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from redisops_testlib.drill import fingerprint, key_count, seed
from redisops_testlib.hosts import host_address
from redisops_testlib.redis_cli import admin

# Every test here runs with the checkers' runs recorded (conftest.py: check_runs).
pytestmark = pytest.mark.usefixtures("check_runs")


def _only_backup(root) -> Path:
    backups = sorted(Path(root).glob("*/*/manifest.json"))
    assert len(backups) == 1, backups
    return backups[0].parent


def test_restore_refuses_without_a_backup(ops):
    proc = ops.run("restore-redis")
    assert proc.returncode != 0
    assert "No backup given" in proc.stdout


def test_restore_refuses_a_missing_backup(ops, tmp_path):
    proc = ops.run("restore-redis", {"redis_server_backup": str(tmp_path / "nothing-here")})
    assert proc.returncode != 0
    assert "No backup found" in proc.stdout


def test_restore_refuses_more_than_one_host(ops, tmp_path):
    proc = ops.run("restore-redis", {"redis_server_backup": str(tmp_path)}, limit="all")
    assert proc.returncode != 0
    assert "Restore one host at a time" in proc.stdout


def test_restore_refuses_a_damaged_backup_and_changes_nothing(server, ops, tmp_path):
    ops.ok("backup-redis", {"redis_server_backup_root": str(tmp_path)})
    backup = _only_backup(tmp_path)
    archive = backup / "redis-data.tar.gz"
    archive.write_bytes(archive.read_bytes()[:-64] + b"x" * 64)  # damaged in transit or at rest
    pid = server.service("redis-server").systemd_properties["MainPID"]
    proc = ops.run("restore-redis", {"redis_server_backup": str(backup)})
    assert proc.returncode != 0
    assert "does not match the SHA-256 in its manifest: not restoring from it" in proc.stdout, proc.stdout[-2000:]
    assert server.service("redis-server").systemd_properties["MainPID"] == pid


def test_backup_flushall_restore_brings_every_key_back(server, ops, tmp_path):
    seed(server, "app:br")
    before = fingerprint(server, "app:br:*")
    assert before[0] >= 2004

    out = ops.ok("backup-redis", {"redis_server_backup_root": str(tmp_path)})
    backup = _only_backup(tmp_path)
    assert str(backup) in out  # the playbook prints where the backup is
    manifest = json.loads((backup / "manifest.json").read_text())

    # The fault: everything gone. (The live app writes its own keys again at
    # once, beat's heartbeat every 2 s: count only the drill's.)
    assert admin(server, "FLUSHALL") == "OK"
    assert fingerprint(server, "app:br:*")[0] == 0

    out = ops.ok("restore-redis", {"redis_server_backup": str(backup)})
    after = fingerprint(server, "app:br:*")
    print(f"restore: {before[0]} keys before, {after[0]} after; sha1 {before[1]} / {after[1]}")
    assert after == before
    # The playbook compared the key count with the backup's.
    assert f"{manifest['rdb_keys']} in the backup" in out
    # AOF is on again and the data came back from it after the restart.
    assert admin(server, "CONFIG", "GET", "appendonly").splitlines()[-1] == "yes"
    assert "loaded after a restart" in out
    assert not server.file("/run/systemd/system/redis-server.service.d/zz-restore.conf").exists


def test_backup_on_one_host_restores_every_key_on_a_new_host(server, new_server, remote, users, ops, tmp_path):
    """The backup lands on the controller; the new host was converged from the
    same inventory (the runbook's first step), so the app's users work there."""
    seed(server, "app:move")
    seeded = fingerprint(server, "app:move:*")
    assert key_count(new_server) == 0

    ops.ok("backup-redis", {"redis_server_backup_root": str(tmp_path)})
    backup = _only_backup(tmp_path)
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["host"] == ops.host

    new_name = new_server.backend.get_hostname()
    out = ops.ok("restore-redis", {"redis_server_backup": str(backup)}, limit=new_name)
    assert f"restored {new_name} from {backup} (taken on {ops.host})" in out
    restored = key_count(new_server)
    print(f"new host: {restored} keys restored, {manifest['rdb_keys']} in the backup ({manifest['rdb_expires']} TTL)")
    assert manifest["rdb_keys"] - manifest["rdb_expires"] <= restored <= manifest["rdb_keys"]
    assert fingerprint(new_server, "app:move:*") == seeded
    # The app's user reads the restored data on the new host over the network.
    remote_new = replace(remote, address=host_address(new_server))
    assert remote_new.out("app_data", users["app_data"]["password"], "GET", "app:move:s:7") == "v7"
    assert admin(new_server, "CONFIG", "GET", "appendonly").splitlines()[-1] == "yes"


def test_backups_and_restores_were_checked_by_the_redis_user_never_root(check_runs, server, new_server):
    """The RDB is Redis's to write: redis-check-rdb must not parse it as root, in a backup
    (on the host backed up) or a restore (on the host restored), whichever host it is."""
    runs = [r for r in check_runs() if r[2].startswith("redis-check-rdb")]
    print(f"redis-check-rdb runs: {runs}")
    hosts = {host for host, _, _ in runs}
    assert hosts == {server.backend.get_hostname(), new_server.backend.get_hostname()}, runs
    assert len(runs) >= 5, runs  # two backups and two restores above, plus the damaged backup's
    assert {user for _, user, _ in runs} == {"redis"}, runs
