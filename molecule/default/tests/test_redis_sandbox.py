"""Redis's systemd sandbox, tried from inside it: a process in a copy of
redis-server.service (the package's unit and every drop-in), as the redis user,
does what an attacker who got Redis to write a file or run a command would try.
Each denial has a control outside the sandbox that succeeds, so a denial for
another reason (a missing file, the user's rights) cannot pass."""

import shlex

from redisops_testlib.hosts import redis_fact, write_file
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import ping

DROP_IN = "/etc/systemd/system/redis-server.service.d/override.conf"
PROBE_UNIT = "redis-sandbox-probe.service"
PROBE_OUT = "/run/redis-sandbox-probe.out"


def _in_sandbox(server, script: str) -> str:
    """Run a shell script in Redis's sandbox: a unit made of redis-server.service as
    systemd has it (the package's unit and every drop-in, `systemctl cat`), with
    only its command, type and runtime directory replaced. What the script prints."""
    # systemd expands $ and % in ExecStart=: escape them.
    command = shlex.quote(script + "; echo exit=$?").replace("$", "$$").replace("%", "%%")
    unit = server.check_output("systemctl cat redis-server") + (
        "\n[Service]\nType=oneshot\nRestart=no\nRuntimeDirectory=\nExecStartPre=\nExecStop=\n"
        f"ExecStart=\nExecStart=/bin/sh -c {command}\n"
        f"StandardOutput=file:{PROBE_OUT}\nStandardError=inherit\n"
    )
    try:
        write_file(server, f"/run/systemd/system/{PROBE_UNIT}", unit)
        server.check_output(f"rm -f {PROBE_OUT} && systemctl daemon-reload && systemctl start {PROBE_UNIT}")
        return server.file(PROBE_OUT).content_string
    finally:
        server.run(f"rm -f /run/systemd/system/{PROBE_UNIT} {PROBE_OUT}; systemctl daemon-reload")


def _systemd_version(server) -> int:
    return int(server.check_output("systemctl --version").split()[1])


def test_a_file_redis_writes_cannot_be_executed_in_its_sandbox(server):
    """A file in the data dir (a rogue master's "RDB" would land there) is not
    executable, so not loadable with MODULE LOAD either (mmap PROT_EXEC)."""
    dropped = f"{redis_fact(server)['dir']}/dropped-by-test"
    if _systemd_version(server) < 248:
        # systemd 247 (Debian 11) has no NoExecPaths=: the role leaves it out
        # rather than have systemd warn about an unknown key at each reload.
        assert "NoExecPaths" not in server.file(DROP_IN).content_string
        assert "NoExecPaths" not in server.check_output("journalctl --no-pager -b -o cat")
        return
    try:
        out = _in_sandbox(server, f"cp /usr/bin/true {dropped} && chmod 755 {dropped} && {dropped}")
        assert "Permission denied" in out, out
        assert "exit=126" in out, out
        # Control: the same file, outside the sandbox, runs (as the redis user).
        assert server.run(f"runuser -u redis -- {dropped}").rc == 0
        # Redis's own program still runs inside it.
        assert "exit=0" in _in_sandbox(server, "/usr/bin/redis-server --version >/dev/null")
    finally:
        server.run(f"rm -f {dropped}")


def test_redis_sees_no_other_users_processes(server):
    out = _in_sandbox(server, "test -e /proc/1 || echo pid1-hidden; test -e /proc/$$ && echo own")
    assert out.split() == ["pid1-hidden", "own", "exit=0"], out
    # Control: the redis user outside the sandbox sees PID 1 (systemd, root).
    assert server.run("runuser -u redis -- test -e /proc/1").rc == 0


def _shm_ids(server, owner: str) -> set[str]:
    # ipcs -m: key shmid owner perms bytes nattch status
    rows = [line.split() for line in server.check_output("ipcs -m").splitlines()]
    return {row[1] for row in rows if len(row) > 2 and row[2] == owner and row[1].isdigit()}


def test_shared_memory_left_by_the_redis_user_goes_when_redis_stops(server):
    created = server.check_output("runuser -u redis -- ipcmk -M 4096").split()[-1]
    assert created in _shm_ids(server, "redis")
    server.check_output("systemctl restart redis-server")
    wait_for(lambda: ping(server) == "PONG", timeout=60)
    assert created not in _shm_ids(server, "redis")
