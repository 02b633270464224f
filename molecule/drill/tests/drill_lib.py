"""What every drill does: seed data, fingerprint it, run an ops playbook."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import uuid
from pathlib import Path
from typing import Any

from conftest import SERVER
from redis_testlib import REPO, ansible_playbook, wait_for

OPS = REPO / "playbooks" / "ops"
# Plain output: the tests read the playbooks' messages.
os.environ["ANSIBLE_NOCOLOR"] = "1"
os.environ.pop("ANSIBLE_FORCE_COLOR", None)

# Count and SHA-1 of every key matching ARGV[1] with its type and value,
# computed inside Redis (the admin user may run KEYS from a script; the data
# set is small). The app keeps writing its own keys (heartbeat, results), so
# drills compare the keys they seeded.
FINGERPRINT_LUA = r"""
local keys = redis.call('KEYS', ARGV[1])
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


def fingerprint(server, pattern: str = "*") -> tuple[int, str]:
    server.run(f"cat > /root/fingerprint.lua <<'EOF'\n{FINGERPRINT_LUA}\nEOF")
    out = server.check_output(f"redis-admin --eval /root/fingerprint.lua , {shlex.quote(pattern)}").splitlines()
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
    server.run("cat > /root/seed.txt <<'EOF'\n" + "\n".join(cmds) + "\nEOF")
    report = server.check_output("redis-admin --pipe < /root/seed.txt 2>&1")
    assert f"errors: 0, replies: {len(cmds)}" in report, report


def wait_fsync(server, seconds: int = 2) -> None:
    """appendfsync everysec: wait by Redis's clock until the writes are on disk."""
    t0 = int(admin(server, "TIME").splitlines()[0])
    wait_for(lambda: int(admin(server, "TIME").splitlines()[0]) >= t0 + seconds, timeout=15)


def ops(name: str, extra_vars: dict[str, Any] | None = None,
        limit: str | None = SERVER) -> subprocess.CompletedProcess[str]:
    """Run playbooks/ops/<name>.yml on the scenario inventory, as the runbook
    says: `-l <host>`, by default the Redis host under test (limit=None: the
    playbook's own hosts, e.g. the app playbooks).

    stdout comes back with runs of whitespace made single spaces: the YAML
    callback wraps long messages at arbitrary places.
    """
    proc = ansible_playbook(OPS / f"{name}.yml", extra_vars, limit=limit)
    proc.stdout = " ".join(proc.stdout.split())
    return proc


def ops_ok(name: str, extra_vars: dict[str, Any] | None = None,
           limit: str | None = SERVER) -> str:
    proc = ops(name, extra_vars, limit)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return proc.stdout


def ping(server) -> str:
    return server.run("redis-admin PING").stdout.strip()


def playbook_path(name: str) -> Path:
    return OPS / f"{name}.yml"


# A client of the deployed API (at most `seconds`, until told to stop): each
# iteration makes one request, checks the status and records the id it got.
# Modes: stream = POST /api/stream (app_data user: XADD), task = POST
# /api/tasks "add" (broker user). Python stdlib only; runs on the app host.
API_LOOP = r"""
import json, os, sys, time, urllib.error, urllib.request
base, mode, tag, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
stop, out = "/tmp/%s.stop" % tag, "/tmp/%s.json" % tag
stats = {"ok": 0, "failed": 0, "errors": [], "ids": []}
deadline, i = time.time() + seconds, 0
def dump():
    json.dump(stats, open(out + ".tmp", "w")); os.replace(out + ".tmp", out)
while time.time() < deadline and not os.path.exists(stop):
    i += 1
    if mode == "stream":
        url, body, want, key = base + "/api/stream", {"fields": {"drill": tag, "n": str(i)}}, 201, "id"
    else:
        url, body, want, key = base + "/api/tasks", {"task": "add", "args": {"x": i, "y": 1}}, 202, "task_id"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "X-Forwarded-Proto": "https"})
    try:
        resp = urllib.request.urlopen(req, timeout=15)
        status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    except OSError as e:
        status, text = 0, repr(e)
    if status == want:
        stats["ok"] += 1
        stats["ids"].append(json.loads(text)[key])
    else:
        stats["failed"] += 1
        stats["errors"].append([i, status, text[:200]])
    if i % 10 == 0:
        dump()
    time.sleep(0.05)
stats["done"] = True
dump()
"""


class ApiLoop:
    """API_LOOP started in the background on the app host."""

    def __init__(self, host, base_url: str, mode: str, seconds: int = 240) -> None:
        self.host, self.tag = host, f"loop-{uuid.uuid4().hex[:8]}"
        host.run(f"cat > /tmp/{self.tag}.py <<'EOF'\n{API_LOOP}\nEOF")
        host.check_output(
            f"setsid python3 /tmp/{self.tag}.py {base_url} {mode} {self.tag} {seconds} "
            f">/tmp/{self.tag}.log 2>&1 </dev/null &"
        )

    def stats(self) -> dict[str, Any]:
        f = self.host.file(f"/tmp/{self.tag}.json")
        return json.loads(f.content_string) if f.exists else {}

    def wait_ok(self, more: int, timeout: float = 60) -> None:
        """Wait until `more` further requests succeeded."""
        start = self.stats().get("ok", 0)
        wait_for(lambda: self.stats().get("ok", 0) >= start + more, timeout=timeout)

    def stop(self) -> dict[str, Any]:
        self.host.run(f"touch /tmp/{self.tag}.stop")
        wait_for(lambda: self.stats().get("done"), timeout=30)
        return self.stats()
