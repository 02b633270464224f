"""A deploy of a new app version, the operator's way, drops no request."""

import json
import os
import shlex
import subprocess
import threading
import uuid

from app_testlib import HTTPS, REPO, http, wait_for
from redis_testlib import run_playbook

WHEELHOUSE = REPO / "build" / "wheelhouse"
RELEASED = (REPO / "django_app" / "VERSION").read_text().strip()
NEXT = "0.1.1"

# A client on another host: GET /version and POST /api/tasks (a write to
# Redis through the broker user) in turn, until the stop file appears or
# its bounds (count, seconds) are hit. Prints a summary as JSON.
_CLIENT = r"""
import json, os, sys, time, urllib.request, urllib.error
base, stop, max_n, max_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
hdrs = {"X-Forwarded-Proto": "https", "Content-Type": "application/json"}
task = json.dumps({"task": "add", "args": {"x": 1, "y": 2}}).encode()
n, failed, versions, deadline = 0, [], [], time.monotonic() + max_s
while n < max_n and time.monotonic() < deadline and not os.path.exists(stop):
    path, data, ok = ("/version", None, 200) if n % 2 == 0 else ("/api/tasks", task, 202)
    try:
        resp = urllib.request.urlopen(urllib.request.Request(base + path, data=data, headers=hdrs), timeout=10)
        status, body = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    except OSError as e:
        status, body = 0, repr(e).encode()
    n += 1
    if status != ok:
        failed.append([path, status, body.decode(errors="replace")[:200]])
    elif path == "/version":
        v = json.loads(body)["version"]
        if not versions or versions[-1] != v:
            versions.append(v)
        if n == 1:
            open(stop + ".started", "w").close()
    time.sleep(0.02)
print(json.dumps({"requests": n, "failed": failed, "versions": versions}))
"""


def _master_pid(web) -> str:
    return web.check_output("systemctl show -p MainPID --value redisops-web.service")


def test_deploy_while_a_client_loops_drops_no_request(web, worker, base_url):
    before = http(worker, "GET", f"{base_url}/version")["json"]["version"]
    # The other version, so that the test also deploys when run again.
    target = NEXT if before != NEXT else RELEASED
    if target == NEXT:
        subprocess.run(
            [REPO / "django_app" / "scripts" / "wheelhouse.sh", WHEELHOUSE],
            env={**os.environ, "APP_VERSION": NEXT, "WHEELHOUSE_APP_ONLY": "1"},
            check=True, capture_output=True, timeout=120,
        )
    master = _master_pid(web)

    stop = f"/tmp/deploy-client-{uuid.uuid4().hex}"
    cmd = f"python3 -c {shlex.quote(_CLIENT)} {base_url} {stop} 30000 600"
    client: dict = {}
    thread = threading.Thread(target=lambda: client.update(out=worker.run(cmd)))
    thread.start()
    try:
        wait_for(lambda: worker.file(stop + ".started").exists, timeout=30)
        # What the README tells the operator to run.
        run_playbook(REPO / "playbooks" / "site.yml", {"django_app_version": target}, tags="django_app")
    finally:
        worker.run(f"touch {stop}")
        thread.join(timeout=60)
    assert client["out"].rc == 0, client["out"].stderr
    result = json.loads(client["out"].stdout)

    print(f"deploy {before} -> {target}: {result['requests']} requests, versions seen {result['versions']}")
    assert result["failed"] == []
    # The loop really spanned the switch: it saw both versions (old and new
    # gunicorn workers overlap for a moment), and many requests.
    assert result["versions"][0] == before and result["versions"][-1] == target
    assert result["requests"] >= 100
    r = http(worker, "GET", f"{base_url}/version", headers=HTTPS)
    assert r["json"]["version"] == target
    # A reload (HUP), not a restart: the master stayed, new workers took over.
    assert _master_pid(web) == master
