"""A deploy of a new app version, the operator's way, drops no request; rolling it
back (docs/runbooks/app-deploy-rollback.md) drops none either; a rollback refuses
hosts that would end on different versions. In this order: each starts from what
the one before left."""

from redisops_testlib.api import AUTH, ApiLoop, http, summary
from redisops_testlib.hosts import hosts_in_group
from redisops_testlib.playbooks import build_wheel, run_playbook
from redisops_testlib.scenario import REPO

RELEASED = (REPO / "django_app" / "VERSION").read_text().strip()
NEXT = "0.1.1"
# Deployed to the worker host only, as a deploy that stopped half way.
AHEAD = "0.1.2"
VENV = "/opt/redisops/venv"


def _master_pid(web) -> str:
    return web.check_output("systemctl show -p MainPID --value redisops-web.service")


def test_deploy_while_a_client_loops_drops_no_request(web, worker, base_url):
    before = http(worker, "GET", f"{base_url}/version")["json"]["version"]
    # The other version, so that the test also deploys when run again.
    target = NEXT if before != NEXT else RELEASED
    if target == NEXT:
        build_wheel(NEXT)
    master = _master_pid(web)

    # A client on another host: GET /version and POST /api/tasks (a write to
    # Redis through the broker user) in turn.
    # timeout: gunicorn's HUP stops the old workers as soon as the new ones are forked;
    # a request waits in the listen backlog until a new worker has imported the app,
    # which took over 10 s on a loaded CI machine (late, not lost: `slowest` shows it).
    loop = ApiLoop(worker, base_url, "deploy", seconds=600, count=30000, interval=0.02, timeout=30)
    try:
        loop.wait_ok(1, timeout=30)
        # What the README tells the operator to run.
        run_playbook(REPO / "playbooks" / "site.yml", {"django_app_version": target}, tags="django_app")
    finally:
        stats = loop.stop()

    print(f"deploy {before} -> {target}: {summary(stats)}, versions seen {stats['versions']}")
    assert stats["failed"] == 0, stats["errors"]
    # The loop really spanned the switch: it saw both versions (old and new
    # gunicorn workers overlap for a moment), and many requests.
    assert (stats["versions"][0], stats["versions"][-1]) == (before, target)
    assert stats["requests"] >= 100
    r = http(worker, "GET", f"{base_url}/version", headers=AUTH)
    assert r["json"]["version"] == target
    # A reload (HUP), not a restart: the master stayed, new workers took over.
    assert _master_pid(web) == master


def test_rollback_refuses_hosts_that_would_end_on_different_versions(web, worker, base_url, ops, scenario):
    """A deploy that reached only some hosts leaves them with different previous
    releases: a rollback without a version refuses before it changes anything; naming
    one brings every host to it (docs/runbooks/app-deploy-rollback.md)."""
    live = http(worker, "GET", f"{base_url}/version")["json"]["version"]
    build_wheel(AHEAD)
    run_playbook(
        REPO / "playbooks/site.yml",
        {"django_app_version": AHEAD},
        tags="django_app",
        limit=hosts_in_group(scenario, "app_workers")[0],
    )
    links = {h: h.file(VENV).linked_to for h in (web, worker)}

    proc = ops.run("rollback", limit="all")
    assert proc.returncode != 0
    assert "The hosts would roll back to different versions" in proc.stdout, proc.stdout[-2000:]
    assert "Nothing was changed" in proc.stdout
    assert {h: h.file(VENV).linked_to for h in (web, worker)} == links

    out = ops.ok("rollback", {"django_app_rollback_to": live}, limit="all")
    assert "already live, nothing changed" in out, out[-2000:]
    assert f"-> {live}-" in out
    assert http(worker, "GET", f"{base_url}/version")["json"]["version"] == live
    assert worker.file(VENV).linked_to.rsplit("/", 1)[-1].startswith(f"{live}-")


def test_rollback_under_load_brings_back_the_previous_version(web, worker, base_url, ops):
    """The tests above left every host on the deployed release, the one before it
    installed and recorded: the rollback playbook, as the runbook runs it, brings
    that one back while a client writes to a stream through the proxy."""
    ahead = http(worker, "GET", f"{base_url}/version")["json"]["version"]
    previous = RELEASED if ahead == NEXT else NEXT
    loop = ApiLoop(worker, base_url, "stream", seconds=900)
    try:
        loop.wait_ok(20)
        out = ops.ok("rollback", limit="all")
        assert f"runs {previous}-" in out, out[-3000:]
        loop.wait_ok(20)
    finally:
        stats = loop.stop()
    assert http(worker, "GET", f"{base_url}/version", headers=AUTH)["json"]["version"] == previous
    assert {h.file(VENV).linked_to.rsplit("/", 1)[-1].split("-")[0] for h in (web, worker)} == {previous}
    print(f"rollback {ahead} -> {previous}: {summary(stats)}")
    assert stats["failed"] == 0, stats["errors"][:5]
