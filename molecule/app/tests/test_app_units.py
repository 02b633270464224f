"""The app's systemd units: hardened, enabled, back after a host restart."""

import subprocess

import pytest

from redisops_testlib.api import HTTPS, http
from redisops_testlib.hosts import get_host, hosts_in_group
from redisops_testlib.polling import wait_for
from redisops_testlib.scenario import scenario_of

MAX_EXPOSURE = 2.0
UNITS = {
    "app_web": ["redisops-web.service"],
    "app_beat": ["redisops-beat.service"],
    "app_workers": ["redisops-worker@default.service", "redisops-worker@heavy.service"],
    "app_consumers": ["redisops-stream-consumer.service", "redisops-pubsub-listener.service"],
}
CASES = [(hosts_in_group(scenario_of(__file__), group)[0], unit) for group, units in UNITS.items() for unit in units]


@pytest.mark.parametrize(("host_name", "unit"), CASES)
def test_unit_exposure_is_at_most_2(host_name, unit):
    out = get_host(host_name).check_output(f"systemd-analyze security {unit} 2>/dev/null | tail -1")
    score = float(out.split("level for")[1].split(":")[1].split()[0])
    print(f"{host_name} {unit}: systemd-analyze security exposure {score}")
    assert score <= MAX_EXPOSURE, out


@pytest.mark.parametrize(("host_name", "unit"), [*CASES, ("web-app", "redisops-web.socket")])
def test_unit_is_enabled_and_active(host_name, unit):
    svc = get_host(host_name).service(unit)
    assert (svc.is_enabled, svc.is_running) == (True, True)


def test_app_runs_as_its_own_user_never_root(web):
    # The master and every worker of gunicorn (hosts have no ps).
    pid = web.check_output("systemctl show -p MainPID --value redisops-web.service")
    owners = web.check_output(f"stat -c %U /proc/{pid} $(grep -l '^PPid:[[:space:]]*{pid}$' /proc/[0-9]*/status)")
    assert set(owners.split()) == {"redisops"}


def test_env_file_is_not_world_readable(web):
    f = web.file("/etc/redisops/app.env")
    assert (f.user, f.group, f.mode) == ("root", "redisops", 0o640)


def test_services_come_back_after_host_restart(web, worker, base_url):
    subprocess.run(["podman", "restart", "--time", "20", "web-app", "worker-app"], check=True, timeout=120)
    for host_name, unit in CASES:
        host = get_host(host_name)
        wait_for(lambda h=host, u=unit: h.service(u).is_running, timeout=60)
    r = wait_for(
        lambda: (x := http(worker, "GET", f"{base_url}/readyz", headers=HTTPS))["status"] == 200 and x, timeout=60
    )
    assert r["json"]["status"] == "ready"
