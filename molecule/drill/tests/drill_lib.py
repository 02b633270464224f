"""What every drill does: seed data, fingerprint it, run an ops playbook."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from redis_testlib import REPO, ansible_playbook, wait_for

OPS = REPO / "playbooks" / "ops"
# Plain output: the tests read the playbooks' messages.
os.environ["ANSIBLE_NOCOLOR"] = "1"
os.environ.pop("ANSIBLE_FORCE_COLOR", None)

# Count and SHA-1 of every key with its type and value, computed inside Redis
# (the admin user may run KEYS from a script; the data set is small).
FINGERPRINT_LUA = r"""
local keys = redis.call('KEYS', '*')
table.sort(keys)
local parts = {}
for _, k in ipairs(keys) do
  local t = redis.call('TYPE', k)['ok']
  local v
  if t == 'string' then v = {redis.call('GET', k)}
  elseif t == 'hash' then v = redis.call('HGETALL', k)
  elseif t == 'list' then v = redis.call('LRANGE', k, 0, -1)
  elseif t == 'set' then v = redis.call('SMEMBERS', k); table.sort(v)
  elseif t == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
  elseif t == 'stream' then
    v = {}
    for _, e in ipairs(redis.call('XRANGE', k, '-', '+')) do
      v[#v + 1] = e[1] .. ':' .. table.concat(e[2], ',')
    end
  else v = {'?'} end
  parts[#parts + 1] = k .. '|' .. t .. '|' .. table.concat(v, ',')
end
return {#keys, redis.sha1hex(table.concat(parts, '\n'))}
"""


def admin(server, *args: str) -> str:
    """redis-admin on the server; raw output."""
    return server.check_output("redis-admin " + " ".join(args))


def fingerprint(server) -> tuple[int, str]:
    server.run(f"cat > /root/fingerprint.lua <<'EOF'\n{FINGERPRINT_LUA}\nEOF")
    out = server.check_output("redis-admin --eval /root/fingerprint.lua").splitlines()
    return int(out[0]), out[1]


def key_count(server) -> int:
    return int(admin(server, "DBSIZE"))


def seed(server, prefix: str, n: int = 2000) -> None:
    """Strings, a hash, a list, a set and a stream under prefix, acknowledged."""
    cmds = [f"SET {prefix}:s:{i} v{i}" for i in range(n)]
    cmds += [f"HSET {prefix}:h f{i} {i}" for i in range(100)]
    cmds += [f"RPUSH {prefix}:l item{i}" for i in range(100)]
    cmds += [f"SADD {prefix}:set m{i}" for i in range(100)]
    cmds += [f"XADD {prefix}:stream * n {i}" for i in range(100)]
    server.run(f"cat > /root/seed.txt <<'EOF'\n" + "\n".join(cmds) + "\nEOF")
    report = server.check_output("redis-admin --pipe < /root/seed.txt 2>&1")
    assert f"errors: 0, replies: {len(cmds)}" in report, report


def wait_fsync(server, seconds: int = 2) -> None:
    """appendfsync everysec: wait by Redis's clock until the writes are on disk."""
    t0 = int(admin(server, "TIME").splitlines()[0])
    wait_for(lambda: int(admin(server, "TIME").splitlines()[0]) >= t0 + seconds, timeout=15)


def ops(name: str, extra_vars: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    """Run playbooks/ops/<name>.yml on the scenario inventory, as the runbook says.

    stdout comes back with runs of whitespace made single spaces: the YAML
    callback wraps long messages at arbitrary places.
    """
    proc = ansible_playbook(OPS / f"{name}.yml", extra_vars)
    proc.stdout = " ".join(proc.stdout.split())
    return proc


def ops_ok(name: str, extra_vars: dict[str, Any] | None = None) -> str:
    proc = ops(name, extra_vars)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return proc.stdout


def ping(server) -> str:
    return server.run("redis-admin PING").stdout.strip()


def playbook_path(name: str) -> Path:
    return OPS / f"{name}.yml"
