"""Drill: rotate an API client's bearer token while it keeps calling the API: the
client switches to the new token between the two phases, and not one request fails;
afterwards the old token is refused.

Runbook: docs/runbooks/api-token-rotation.md
"""

from collections.abc import Iterator

import pytest

from redisops_testlib.api import CLIENTS, ApiLoop, http, summary
from redisops_testlib.playbooks import restore_api_tokens

OLD = CLIENTS["tests"][0]
NEW = "tests-rotated-token-0123456789-0123456789-0"


@pytest.fixture(scope="module")
def rotation() -> Iterator[dict[str, bool]]:
    """{"finished": True} once a test has run both phases to the end (only NEW accepted);
    the scenario's tokens are written back once, after the module, for the drills after it."""
    state = {"finished": False}
    yield state
    restore_api_tokens()


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


def test_token_rotation_under_api_load_has_zero_failed_requests(app_host, base_url, ops, rotation):
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
        rotation["finished"] = True
        loop.wait_ok(20)
    finally:
        stats = loop.stop()
    print(f"token rotation: {summary(stats)}")
    assert stats["failed"] == 0, stats["errors"][:5]
    assert stats["ok"] > 80
    # No restart: the app re-read the hashes.
    assert app_host.check_output("systemctl show -p MainPID --value redisops-web.service") == master


def test_old_token_is_refused_after_finish(app_host, base_url, ops, rotation):
    # The rotation under load above ends with its finish: its state is the one to
    # check (two more playbook runs would only repeat it). Run alone, or after that
    # test stopped before its finish, the rotation runs here.
    if not rotation["finished"]:
        _rotate(ops, "add", OLD)
        _rotate(ops, "finish", NEW)
        rotation["finished"] = True
    old = http(app_host, "POST", f"{base_url}/api/stream", {"fields": {"t": "old"}}, {"Authorization": f"Bearer {OLD}"})
    new = http(app_host, "POST", f"{base_url}/api/stream", {"fields": {"t": "new"}}, {"Authorization": f"Bearer {NEW}"})
    assert (old["status"], new["status"]) == (401, 201)
