"""The web tier as an attacker meets it, from a host that is not the web host: only
the proxy answers, over TLS 1.2 or later; forged forwarding headers change nothing;
oversized bodies and slow clients end at the proxy; a reload drops no request; a
site file nginx refuses never lands."""

import json
import re
import uuid

from redisops_testlib.api import AUTH, ApiLoop, burst, http, summary
from redisops_testlib.hosts import STATE_DIR, client_command, run_client
from redisops_testlib.playbooks import ansible_playbook
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import delete_keys
from redisops_testlib.scenario import REPO, scenario_of

APP_ENV = scenario_of(__file__).app_env
MAX_BODY = 65536


def _web_name(web) -> str:
    return web.backend.get_hostname()


def test_only_the_proxy_listens_for_other_hosts(web, worker):
    """gunicorn listens on a unix socket only; from another host 80 and 443 answer,
    the old gunicorn port is refused."""
    listening = web.check_output("ss -ltnH")
    local = [line.split()[3].rsplit(":", 1) for line in listening.splitlines()]
    outside = {int(port) for addr, port in local if not re.match(r"^(127\.|\[::1\])", addr)}
    print(f"TCP listeners on the web host: {local}")
    assert outside == {80, 443}, listening
    name = _web_name(web)
    assert [run_client(worker, "connect", address=name, port=p) for p in (443, 80, 8000)] == ["open", "open", "refused"]
    assert web.socket("unix:///run/redisops-web.sock").is_listening


def test_plain_http_redirects_to_https_whatever_the_client_claims(worker, web):
    url = f"http://{_web_name(web)}/api/tasks?x=1"
    r = http(worker, "GET", url, headers={"X-Forwarded-Proto": "https", **AUTH}, follow=False)
    assert r["status"] == 301
    assert r["headers"]["Location"] == f"https://{_web_name(web)}/api/tasks?x=1"


def test_tls_below_1_2_is_refused(worker, web):
    """The client offers TLS 1.1 (its own floor lowered, so the refusal is the server's)."""
    name = _web_name(web)
    cmd = f"openssl s_client -connect {name}:443 -servername {name} -brief </dev/null 2>&1"
    old = worker.run(f"{cmd.replace('-brief', '-tls1_1 -cipher DEFAULT:@SECLEVEL=0 -brief')}")
    assert old.rc != 0
    assert re.search(r"alert protocol version|unsupported protocol", old.stdout), old.stdout
    for version in ("1_2", "1_3"):
        ok = worker.run(cmd.replace("-brief", f"-tls{version} -brief"))
        assert ok.rc == 0, ok.stdout
        assert f"Protocol version: TLSv{version.replace('_', '.')}" in ok.stdout


def test_forged_x_forwarded_for_does_not_escape_the_rate_limit(worker, redis, base_url):
    """30 requests, each claiming another client address: the proxy replaces the header
    with the real one, so they all count against the one client."""
    delete_keys(redis, "app:rl:*")
    limit = int(APP_ENV["APP_LIMITED_LIMIT"])
    answers = burst(worker, f"{base_url}/api/limited?forged={uuid.uuid4().hex[:8]}", 30, forge=True)
    statuses = [a["status"] for a in answers]
    print(f"forged X-Forwarded-For: {statuses.count(200)} of 30 admitted (limit {limit})")
    assert statuses.count(200) == limit, statuses
    assert statuses.count(429) == 30 - limit


def test_body_over_the_limit_gets_413_json_from_the_proxy(worker, base_url):
    r = http(worker, "POST", f"{base_url}/api/stream", {"fields": {"big": "x" * MAX_BODY}}, AUTH)
    assert r["status"] == 413
    assert r["json"] == {"error": f"request body larger than {MAX_BODY} bytes"}


def test_slow_clients_do_not_keep_a_normal_client_waiting(web, worker, base_url):
    """200 connections that send their headers a byte a second: nginx holds them (not
    gunicorn) and cuts them off; meanwhile a normal request answers within a second."""
    state = f"{STATE_DIR}/slow-{uuid.uuid4().hex[:8]}.json"
    cmd = client_command(worker, "slow_clients", address=_web_name(web), port=443, n=200, seconds=25, state=state)
    worker.check_output(f"setsid {cmd} >{state}.log 2>&1 </dev/null &")
    wait_for(lambda: worker.file(state).exists and json.loads(worker.file(state).content_string)["opened"] >= 150)
    times = [http(worker, "GET", f"{base_url}/healthz")["seconds"] for _ in range(5)]
    result = wait_for(lambda: (r := json.loads(worker.file(state).content_string))["done"] and r, timeout=60)
    print(f"slow clients: {result}; a normal client meanwhile: {times} s")
    assert max(times) < 1.0
    assert result["opened"] >= 150
    # Cut off by the proxy's client timeout, not left to hold a worker.
    assert result["cut"] == result["opened"]
    assert result["first_cut"] <= 15


def test_a_proxy_reload_drops_no_request(web, worker, base_url):
    loop = ApiLoop(worker, base_url, "deploy", seconds=120, interval=0.02)
    try:
        loop.wait_ok(20)
        for _ in range(3):
            web.check_output("systemctl reload nginx")
            loop.wait_ok(20)
    finally:
        stats = loop.stop()
    print(f"nginx reloaded 3 times: {summary(stats)}")
    assert stats["failed"] == 0, stats["errors"]


def test_a_site_file_nginx_refuses_never_lands(web, worker, base_url):
    """nginx -t checks the file before it replaces the live one: a bad value fails the
    run, the live site stays, and nginx keeps serving."""
    site = web.file("/etc/nginx/sites-available/redisops.conf").content_string
    proc = ansible_playbook(REPO / "playbooks/web.yml", {"web_proxy_server_names": ["bad;name"]})
    assert proc.returncode != 0
    assert "failed to validate" in proc.stdout, proc.stdout[-2000:]
    assert web.file("/etc/nginx/sites-available/redisops.conf").content_string == site
    assert http(worker, "GET", f"{base_url}/healthz")["status"] == 200
