"""HTTP through the proxy and gunicorn on the web host, from another host: every
malformed input answers 4xx with a JSON reason, never a 500 or an HTML page."""

import pytest

from redisops_testlib.api import AUTH, http
from redisops_testlib.polling import wait_for


def test_readyz_is_200_from_another_host(worker, base_url):
    r = wait_for(lambda: (x := http(worker, "GET", f"{base_url}/readyz"))["status"] == 200 and x)
    assert r["json"]["status"] == "ready"
    assert all(check["ok"] for check in r["json"]["checks"].values())


JSON = {**AUTH, "Content-Type": "application/json"}
MALFORMED = {
    "unknown task": ("POST", "/api/tasks", {"raw": '{"task": "nope"}'}, 400),
    "bad JSON": ("POST", "/api/tasks", {"raw": '{"task": "add", '}, 400),
    "not an object": ("POST", "/api/tasks", {"raw": "[1, 2]"}, 400),
    "wrong type": ("POST", "/api/tasks", {"raw": '{"task": "add", "args": {"x": "1", "y": 2}}'}, 400),
    "out of range": ("POST", "/api/tasks", {"raw": '{"task": "add", "args": {"x": 1e30, "y": 2}}'}, 400),
    "unknown field": ("POST", "/api/tasks", {"raw": '{"task": "add", "args": {"x": 1, "y": 2, "z": 3}}'}, 400),
    "oversize field": ("POST", "/api/publish", {"raw": '{"topic": "t", "message": "' + "m" * 9000 + '"}'}, 400),
    "bad topic": ("POST", "/api/publish", {"raw": '{"topic": "a b", "message": "m"}'}, 400),
    "reserved stream field": ("POST", "/api/stream", {"raw": '{"fields": {"poison": "1"}}'}, 400),
    "wrong method": ("DELETE", "/api/tasks", {}, 405),
    "bad content type": (
        "POST",
        "/api/tasks",
        {"raw": "task=add", "headers": {**AUTH, "Content-Type": "text/plain"}},
        400,
    ),
    "bad UUID": ("GET", "/api/tasks/not-a-uuid", {}, 400),
    "unknown path": ("GET", "/api/nothing-here", {}, 404),
}


@pytest.mark.parametrize(("method", "path", "how", "status"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_gets_a_json_4xx(worker, base_url, method, path, how, status):
    r = http(worker, method, f"{base_url}{path}", headers=how.get("headers", JSON), raw=how.get("raw"))
    assert r["status"] == status, r["body"][:300]
    assert r["headers"]["Content-Type"] == "application/json"
    assert isinstance(r["json"]["error"], str)


def test_version_reports_the_deployed_release(worker, web, base_url):
    installed = web.check_output("readlink /opt/redisops/venv").rsplit("/", 1)[-1]
    r = http(worker, "GET", f"{base_url}/version")
    assert r["status"] == 200
    assert installed.startswith(r["json"]["version"] + "-")
