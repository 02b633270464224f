"""inventories/production.example, as given, on real hosts: Redis on the private
address with TLS only and client certificates, the app over TLS with each process
holding only its own Redis credentials, behind the TLS proxy."""

import ast
import json
import shlex

import yaml

from redisops_testlib.api import http
from redisops_testlib.hosts import host_address, run_client
from redisops_testlib.playbooks import run_playbook
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import APP_HOST_TLS
from redisops_testlib.scenario import REPO

SMOKE = REPO / "django_app" / "redisops" / "management" / "commands" / "smoke.py"
CHECKS = next(
    ast.literal_eval(node.value)
    for node in ast.parse(SMOKE.read_text()).body
    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "CHECKS"
)
# The processes' users (django_app/redisops/redis_acl.py PROCESS_USERS), by URL variable.
ACL = yaml.safe_load((REPO / "playbooks/group_vars/all/app_redis_acl.yml").read_text())
ENV_OF = {u["name"]: u["env"] for u in ACL["redisops_app_acl"]["users"]}
PROCESS_URLS = {p: sorted(ENV_OF[u] for u in us) for p, us in ACL["redisops_app_acl"]["processes"].items()}
TLS_PORT = 6380


def test_smoke_playbook_passes_every_check():
    out = run_playbook(REPO / "playbooks" / "smoke.yml")
    assert "smoke: all checks passed" in out, out[-3000:]
    missing = [check for check in CHECKS if f"ok   {check}:" not in out]
    assert missing == [], out[-3000:]


def _result(host, base_url, task_id, auth):
    r = http(host, "GET", f"{base_url}/api/tasks/{task_id}", headers=auth)
    return r["json"] if r["json"] and r["json"]["ready"] else None


def test_a_task_round_trips_through_the_proxy_with_a_token(worker, base_url, auth):
    """From another host, over HTTPS (the test CA verified): enqueue, then read the result."""
    refused = http(worker, "POST", f"{base_url}/api/tasks", {"task": "add", "args": {"x": 1, "y": 2}})
    assert refused["status"] == 401, refused["body"]
    r = http(worker, "POST", f"{base_url}/api/tasks", {"task": "add", "args": {"x": 20, "y": 22}}, auth)
    assert r["status"] == 202, r["body"]
    result = wait_for(lambda: _result(worker, base_url, r["json"]["task_id"], auth), timeout=30)
    assert (result["state"], result["result"]) == ("SUCCESS", 42)


def _environ(host, unit):
    pid = host.check_output(f"systemctl show -p MainPID --value {shlex.quote(unit)}")
    assert pid != "0", f"{unit} is not running"
    # As the app's user: root in the container may not read another user's environ.
    raw = host.check_output(f"runuser -u redisops -- sh -c \"tr '\\\\0' '\\\\n' < /proc/{pid}/environ\"")
    return dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)


def test_each_app_process_holds_only_its_own_redis_credentials(web, worker):
    """What each running process got from systemd: its users' URLs, nothing else, all
    rediss:// to Redis's TLS port; the files are root's only; no other process's
    file on the host; the monitor user only in manage.env (status, smoke)."""
    cases = [
        (web, "redisops-web.service", "web"),
        (web, "redisops-beat.service", "beat"),
        (worker, "redisops-worker@default.service", "worker"),
        (worker, "redisops-stream-consumer.service", "consumers"),
        (worker, "redisops-pubsub-listener.service", "consumers"),
    ]
    for host, unit, process in cases:
        env = _environ(host, unit)
        urls = {k: v for k, v in env.items() if k.startswith("REDIS_") and k.endswith("_URL")}
        assert sorted(urls) == PROCESS_URLS[process], (unit, sorted(urls))
        assert env["APP_PROCESS"] == process
        assert all(u.startswith("rediss://") and u.endswith(f"@prod-redis:{TLS_PORT}/0") for u in urls.values()), unit
        f = host.file(f"/etc/redisops/{process}.env")
        assert (f.user, f.group, f.mode) == ("root", "root", 0o600)
    assert not web.file("/etc/redisops/worker.env").exists
    assert not web.file("/etc/redisops/consumers.env").exists
    assert not worker.file("/etc/redisops/web.env").exists
    assert not worker.file("/etc/redisops/beat.env").exists
    for host in (web, worker):
        manage = host.file("/etc/redisops/manage.env")
        assert (manage.user, manage.mode) == ("root", 0o600)
        assert "REDIS_MONITOR_URL=" in host.check_output("cat /etc/redisops/manage.env")
        assert "REDIS_" not in host.file("/etc/redisops/app.env").content_string


# Run on an app host with the app's own Python and redis-py: a PING to Redis as the
# app_budget user, over plain TCP or over TLS with the app's CA and client certificate.
PING = """
import json, sys, redis
host, port, password, mode = sys.argv[1:5]
kw = dict(username="app_budget", password=password, socket_timeout=5, socket_connect_timeout=5)
if mode == "tls":
    kw.update(ssl=True, ssl_cert_reqs="required", ssl_ca_certs="/etc/redisops/redis-ca.crt",
              ssl_certfile="/etc/redisops/redis-client.crt", ssl_keyfile="/etc/redisops/redis-client.key")
try:
    print(json.dumps(redis.Redis(host=host, port=int(port), **kw).ping()))
except Exception as exc:
    print(json.dumps(type(exc).__name__ + ": " + str(exc)))
"""


def _ping(host, address, port, password, mode):
    cmd = ["/opt/redisops/venv/bin/python", "-c", PING, address, str(port), password, mode]
    return json.loads(host.check_output(shlex.join(cmd)))


def test_redis_serves_tls_only_with_client_certificates_on_the_private_address(redis, web, secrets):
    """ss on the Redis host: the TLS port on loopback and the private address, no
    plaintext port anywhere; from the web host: the plaintext port refuses, TLS
    without the app's client certificate gets the certificate_required alert, with it
    PING answers."""
    address = host_address(redis)
    assert address.startswith("10.0.20.")
    listening = redis.check_output("ss -Hltn")
    local = {line.split()[3] for line in listening.splitlines()}
    assert {f"127.0.0.1:{TLS_PORT}", f"{address}:{TLS_PORT}"} <= local, listening
    assert not [a for a in local if a.endswith(":6379")], listening
    assert run_client(web, "connect", address="prod-redis", port=6379) == "refused"
    password = secrets["vault_redis_passwords"]["app_budget"]
    assert "Connection refused" in _ping(web, "prod-redis", 6379, password, "plain")
    # Verifying Redis but showing no certificate: TLS 1.3's certificate_required
    # alert before any command (read before sending: the same answer every run).
    ca_only = {"REDIS_TLS_CA": APP_HOST_TLS["REDIS_TLS_CA"]}
    refused = run_client(web, "tls_hello", ca_only, address="prod-redis", port=TLS_PORT)
    assert refused == "TLSV13_ALERT_CERTIFICATE_REQUIRED", refused
    assert _ping(web, "prod-redis", TLS_PORT, password, "tls") is True
