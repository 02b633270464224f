"""Drill: rotate an API client's bearer token while it keeps calling the API: the
client switches to the new token between the two phases, and not one request fails;
afterwards the old token is refused.

Runbook: docs/runbooks/api-token-rotation.md
"""

from redisops_testlib.api import CLIENTS, ApiLoop, http, summary
from redisops_testlib.playbooks import run_playbook
from redisops_testlib.scenario import REPO

OLD = CLIENTS["tests"][0]
NEW = "tests-rotated-token-0123456789-0123456789-0"


def _rotate(ops, phase: str, inventory_token: str) -> str:
    """The ops playbook as the runbook runs it; the inventory (vault) holding inventory_token."""
    clients = {**CLIENTS, "tests": [inventory_token]}
    return ops.ok(
        "rotate-api-token",
        {"phase": phase, "client": "tests", "new_token": NEW, "django_app_api_clients": clients},
        limit="all",
    )


def test_rotation_refuses_to_finish_before_the_inventory_holds_the_new_token(ops):
    proc = ops.run("rotate-api-token", {"phase": "finish", "client": "tests", "new_token": NEW}, limit="all")
    assert proc.returncode != 0
    assert "does not hold exactly the new token" in proc.stdout
    assert NEW not in proc.stdout + proc.stderr


def test_token_rotation_under_api_load_has_zero_failed_requests(app_host, base_url, ops):
    master = app_host.check_output("systemctl show -p MainPID --value redisops-web.service")
    loop = ApiLoop(app_host, base_url, "stream")
    try:
        loop.wait_ok(20)
        out = _rotate(ops, "add", OLD)
        assert "phase add: the new token is accepted next to the current one" in out
        assert NEW not in out
        loop.wait_ok(20)
        # The vault holds the new token; the client picks it up.
        loop.use_token(NEW)
        loop.wait_ok(20)
        out = _rotate(ops, "finish", NEW)
        assert "phase finish: only the new token is accepted" in out
        loop.wait_ok(20)
    finally:
        stats = loop.stop()
        # Back to the scenario's inventory for the drills after this one.
        run_playbook(REPO / "playbooks/app.yml", tags="django_app:env")
    print(f"token rotation: {summary(stats)}")
    assert stats["failed"] == 0, stats["errors"][:5]
    assert stats["ok"] > 80
    # No restart: the app re-read the hashes.
    assert app_host.check_output("systemctl show -p MainPID --value redisops-web.service") == master


def test_old_token_is_refused_after_finish(app_host, base_url, ops):
    try:
        _rotate(ops, "add", OLD)
        _rotate(ops, "finish", NEW)
        old = http(
            app_host, "POST", f"{base_url}/api/stream", {"fields": {"t": "old"}}, {"Authorization": f"Bearer {OLD}"}
        )
        new = http(
            app_host, "POST", f"{base_url}/api/stream", {"fields": {"t": "new"}}, {"Authorization": f"Bearer {NEW}"}
        )
        assert (old["status"], new["status"]) == (401, 201)
    finally:
        run_playbook(REPO / "playbooks/app.yml", tags="django_app:env")
