"""Data survives: AOF switched on over existing data, and a kill -9."""

import json

from redisops_testlib.drill import wait_fsync
from redisops_testlib.hosts import journal, redis_fact
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import admin, admin_pipe, admin_run, ping

PREPARED_KEYS = 500  # written by prepare.yml before AOF was on


def test_turning_aof_on_kept_existing_data(server):
    assert admin(server, "CONFIG", "GET", "appendonly").splitlines()[-1] == "yes"
    keys = admin(server, "--scan", "--pattern", "app:preaof:*").split()
    assert len(keys) == PREPARED_KEYS
    assert admin(server, "GET", "app:preaof:77") == "v77"


def _main_pid(server) -> int:
    return int(server.check_output("systemctl show -p MainPID --value redis-server"))


def test_acknowledged_writes_survive_kill_9(server):
    n = 5000
    # --pipe reports how many replies (acknowledgements) came back.
    admin_pipe(server, f"seq 1 {n} | sed 's/.*/SET app:durable:& &/'", n)
    # appendfsync everysec: what was acknowledged more than ~1 s before the
    # crash is on disk. Wait 2 s by Redis's own clock, then crash it.
    wait_fsync(server)
    old_pid = _main_pid(server)
    server.check_output(f"kill -9 {old_pid}")
    # systemd restarts it (Restart=always); a new PID answers.
    wait_for(lambda: _main_pid(server) not in (0, old_pid), timeout=30)
    wait_for(lambda: ping(server) == "PONG", timeout=30)
    survived = len(admin(server, "--scan", "--pattern", "app:durable:*").split())
    lost = n - survived
    print(f"durability: wrote {n} acknowledged keys, kill -9, lost {lost}")
    assert lost == 0


def test_multi_exec_and_lua_survive_a_restart(server):
    """Redis replays the AOF as the default user, and EXEC re-checks ACLs: with
    a default user of -@all every transaction, and every script's effects
    (written as MULTI/EXEC), were dropped at each restart without an error
    (redis/redis#14541). The role keeps the disabled default user's +@all."""
    admin(server, "DEL", "app:tx:a", "app:tx:b", "app:lua:a", "app:lua:b")
    admin(server, stdin="printf 'MULTI\\nSET app:tx:a 1\\nINCR app:tx:b\\nEXEC\\n'")
    admin(server, "EVAL", "redis.call('SET', KEYS[1], 1) redis.call('INCR', KEYS[2])", "2", "app:lua:a", "app:lua:b")
    before = admin(server, "MGET", "app:tx:a", "app:tx:b", "app:lua:a", "app:lua:b").splitlines()
    assert before == ["1", "1", "1", "1"]
    since = server.check_output("date '+%Y-%m-%d %H:%M:%S'")
    server.check_output("systemctl restart redis-server")
    wait_for(lambda: ping(server) == "PONG", timeout=30)
    after = admin(server, "MGET", "app:tx:a", "app:tx:b", "app:lua:a", "app:lua:b").splitlines()
    log = journal(server, "redis-server", since=since)
    assert "NOPERM" not in log, log
    assert after == before


def test_config_and_acl_files_have_safe_owner_and_mode(server):
    for path in ("/etc/redis/redis.conf", "/etc/redis/users.acl"):
        f = server.file(path)
        assert (f.user, f.group, f.mode) == ("root", "redis", 0o640), path
    secret = server.file("/etc/redis/admin.secret")
    assert (secret.user, secret.group, secret.mode) == ("root", "root", 0o600)
    assert server.file("/etc/redis").mode == 0o750


def test_acl_file_holds_only_password_hashes(server, users, scenario):
    acl = server.file("/etc/redis/users.acl").content_string
    for user in users.values():
        assert user["password"] not in acl
    assert scenario.redis_vars["redis_server_admin_password"] not in acl
    assert acl.count(" #") >= len(users) + 1  # one #<sha256> per user and admin


def test_redis_cannot_rewrite_its_own_config(server):
    # The unit makes /etc/redis read-only for Redis; CONFIG REWRITE fails.
    out = admin_run(server, "CONFIG", "REWRITE")
    assert "ERR" in out.stdout + out.stderr


def test_service_runs_with_the_hardening_drop_in(server):
    props = server.check_output("systemctl show redis-server -p ProtectSystem -p Restart -p NoNewPrivileges -p Type")
    assert "ProtectSystem=strict" in props
    assert "Restart=always" in props
    assert "NoNewPrivileges=yes" in props
    assert "Type=notify" in props
    assert server.service("redis-server").is_enabled


def test_kernel_settings_applied_or_skipped_with_reason(server):
    fact = redis_fact(server)
    writable = server.run("test -w /proc/sys/vm/overcommit_memory").rc == 0
    if writable:
        assert "vm.overcommit_memory" in fact["kernel_applied"]
        assert server.file("/proc/sys/vm/overcommit_memory").content_string.strip() == "1"
    else:
        # In a container the kernel is the host's: the role must say it skipped.
        reason = fact["kernel_skipped"]["vm.overcommit_memory"]
        assert "read-only" in reason
        assert "transparent_hugepage" in fact["kernel_skipped"]
    print("kernel settings skipped:", json.dumps(fact["kernel_skipped"], indent=1))


def test_memory_limit_and_policy_fit_a_broker(server):
    assert admin(server, "CONFIG", "GET", "maxmemory-policy").splitlines()[-1] == "noeviction"
    assert int(admin(server, "CONFIG", "GET", "maxmemory").splitlines()[-1]) == 256 * 1024 * 1024
