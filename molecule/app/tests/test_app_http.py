"""HTTP through gunicorn on the web host, from another host."""

from redisops_testlib.api import HTTPS, http
from redisops_testlib.polling import wait_for


def test_readyz_is_200_from_another_host(worker, base_url):
    r = wait_for(lambda: (x := http(worker, "GET", f"{base_url}/readyz"))["status"] == 200 and x)
    assert r["json"]["status"] == "ready"
    assert all(check["ok"] for check in r["json"]["checks"].values())


def test_bad_input_gets_json_400(worker, base_url):
    r = http(worker, "POST", f"{base_url}/api/tasks", {"task": "nope"}, HTTPS)
    assert r["status"] == 400
    assert "unknown task" in r["json"]["error"]


def test_version_reports_the_deployed_release(worker, web, base_url):
    installed = web.check_output("readlink /opt/redisops/venv").rsplit("/", 1)[-1]
    r = http(worker, "GET", f"{base_url}/version")
    assert r["status"] == 200
    assert installed.startswith(r["json"]["version"] + "-")
