"""The app's systemd units: hardened as stated, valid on systemd 247, enabled, each
restarted once when its settings change, back after a host restart."""

import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from redisops_testlib.api import AUTH, http
from redisops_testlib.hosts import get_host, hosts_in_group, journal
from redisops_testlib.playbooks import ansible_playbook, run_playbook
from redisops_testlib.polling import wait_for
from redisops_testlib.scenario import REPO, scenario_of

SCENARIO = scenario_of(__file__)
UNITS = {
    "app_web": ["redisops-web.service"],
    "app_beat": ["redisops-beat.service"],
    "app_workers": ["redisops-worker@default.service", "redisops-worker@heavy.service"],
    "app_consumers": ["redisops-stream-consumer.service", "redisops-pubsub-listener.service"],
}
CASES = [(hosts_in_group(SCENARIO, group)[0], unit) for group, units in UNITS.items() for unit in units]
REDIS = hosts_in_group(SCENARIO, "redis_servers")[0]


def _stated_exposure() -> dict[str, float]:
    """The Exposure column of systemd/README.md, by unit name (an instance of a
    templated unit takes its template's row): the one place the scores are stated."""
    rows = re.findall(
        r"^\| `([^`]+)`[^|]*\|[^|]*\|[^|]*\| ([0-9.]+) \|$", (REPO / "systemd/README.md").read_text(), re.M
    )
    return {name.replace("<set>", "*"): float(score) for name, score in rows}


STATED = _stated_exposure()
SCORED = [*CASES, (REDIS, "redis-server.service"), (hosts_in_group(SCENARIO, "app_web")[0], "nginx.service")]


def _stated(unit: str) -> float:
    return next(score for name, score in STATED.items() if re.fullmatch(name.replace("*", "[^.]+"), unit))


@pytest.mark.parametrize(("host_name", "unit"), SCORED)
def test_unit_exposure_is_at_most_the_stated_score(host_name, unit):
    out = get_host(host_name).check_output(f"systemd-analyze security {unit} 2>/dev/null | tail -1")
    score = float(out.split("level for")[1].split(":")[1].split()[0])
    print(f"{host_name} {unit}: systemd-analyze security exposure {score}, stated {_stated(unit)}")
    assert score <= _stated(unit), out


def test_every_stated_score_is_scored():
    """No row of the table is left unproven: each stated unit is one the test above scores."""
    assert {name for name in STATED} == {
        "redisops-web.service",
        "redisops-worker@*.service",
        "redisops-beat.service",
        "redisops-stream-consumer.service",
        "redisops-pubsub-listener.service",
        "redis-server.service",
        "nginx.service",
    }
    assert all(any(re.fullmatch(n.replace("*", "[^.]+"), u) for _, u in SCORED) for n in STATED)


def test_units_pass_systemd_analyze_verify_on_systemd_247():
    """The units as the roles rendered them, verified by systemd 247 (Debian 11; Ubuntu
    22.04 has 249) in a throwaway container: no unknown key or section, no parse error.
    Missing binaries are expected there (the app is not installed in it)."""
    with tempfile.TemporaryDirectory() as tmp:
        for host in {h for h, _ in CASES}:
            tar = subprocess.run(
                ["podman", "exec", host, "sh", "-c", "cd /etc/systemd/system && tar -cf - redisops-*"],
                check=True,
                capture_output=True,
                timeout=60,
            ).stdout
            subprocess.run(["tar", "-C", tmp, "-xf", "-"], input=tar, check=True, timeout=60)
        units = sorted(
            p.name.replace("@.service", "@check.service")
            for p in Path(tmp).glob("*.[sS]*")
            if p.suffix in {".service", ".socket"}
        )
        out = subprocess.run(
            [
                "podman",
                "run",
                "--rm",
                "--runtime=runc",
                "--cgroup-manager=cgroupfs",
                "--ulimit=nofile=4096:4096",
                "--ulimit=nproc=4096:4096",
                "-v",
                f"{tmp}:/units:ro",
                "localhost/debian11-systemd:latest",
                "sh",
                "-c",
                "cp -r /units/* /etc/systemd/system/ && cd /etc/systemd/system && systemctl --version | head -1 && "
                'SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$@" 2>&1; true',
                "sh",
                *units,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    print(f"systemd-analyze verify {units}:\n{out}")
    assert out.startswith("systemd 247"), out
    assert len(units) == 6, units
    assert not re.search(r"Unknown key name|Unknown section|Failed to parse|Invalid", out), out


@pytest.fixture(scope="module")
def workers_changed() -> Iterator[dict[str, bool]]:
    """{"changed": True} while the workers run settings other than the inventory's; they
    get the inventory's back (playbooks/workers.yml) by the next test that converges the
    workers anyway, else after the module: one run instead of one per test."""
    state = {"changed": False}
    yield state
    if state["changed"]:
        run_playbook(REPO / "playbooks/workers.yml")


def test_a_changed_worker_setting_restarts_that_worker_once(worker, workers_changed):
    """New settings of one worker instance restart that instance, once (the old handlers
    could restart it twice), and leave the other instance alone."""
    instances = yaml.safe_load((REPO / "roles/celery_worker/defaults/main.yml").read_text())["celery_worker_instances"]
    changed = [{**i, "concurrency": 2} if i["name"] == "heavy" else i for i in instances]
    default, heavy = "redisops-worker@default.service", "redisops-worker@heavy.service"
    pids = {u: worker.service(u).systemd_properties["MainPID"] for u in (default, heavy)}
    since = worker.check_output("date '+%Y-%m-%d %H:%M:%S'")
    workers_changed["changed"] = True
    run_playbook(REPO / "playbooks/workers.yml", {"celery_worker_instances": changed})
    starts = len(re.findall(r"^Started .*Celery worker heavy", journal(worker, heavy, since=since), re.M))
    print(f"heavy worker started {starts} time(s) by the change")
    assert starts == 1
    assert worker.service(default).systemd_properties["MainPID"] == pids[default]
    assert worker.service(heavy).systemd_properties["MainPID"] != pids[heavy]
    assert "CELERY_WORKER_CONCURRENCY='2'" in worker.file("/etc/redisops/worker-heavy.env").content_string


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
    # No Redis credential there: each process's own file, root only.
    assert "REDIS_" not in f.content_string
    for process in ("web", "beat", "manage"):
        f = web.file(f"/etc/redisops/{process}.env")
        assert (f.user, f.group, f.mode) == ("root", "root", 0o600)


def test_services_come_back_after_host_restart(web, worker, base_url):
    subprocess.run(["podman", "restart", "--time", "20", "web-app", "worker-app"], check=True, timeout=120)
    for host_name, unit in CASES:
        host = get_host(host_name)
        wait_for(lambda h=host, u=unit: h.service(u).is_running, timeout=60)
    r = wait_for(
        lambda: (x := http(worker, "GET", f"{base_url}/readyz", headers=AUTH))["status"] == 200 and x, timeout=60
    )
    assert r["json"]["status"] == "ready"


def test_an_instance_no_longer_listed_is_stopped_and_disabled(worker, workers_changed):
    # From the inventory's instances or the changed heavy one the test above leaves:
    # either way, heavy is no longer listed.
    instances = yaml.safe_load((REPO / "roles/celery_worker/defaults/main.yml").read_text())["celery_worker_instances"]
    heavy = "redisops-worker@heavy.service"
    workers_changed["changed"] = True
    try:
        run_playbook(
            REPO / "playbooks/workers.yml", {"celery_worker_instances": [i for i in instances if i["name"] != "heavy"]}
        )
        assert (worker.service(heavy).is_running, worker.service(heavy).is_enabled) == (False, False)
        assert not worker.file("/etc/redisops/worker-heavy.env").exists
    finally:
        run_playbook(REPO / "playbooks/workers.yml")
        workers_changed["changed"] = False
    assert (worker.service(heavy).is_running, worker.service(heavy).is_enabled) == (True, True)


def test_worker_role_refuses_a_stop_timeout_within_the_task_time_limit(worker):
    """A stop that does not outlast the longest task would kill running tasks."""
    pid = worker.service("redisops-worker@default.service").systemd_properties["MainPID"]
    proc = ansible_playbook(REPO / "playbooks/workers.yml", {"celery_worker_stop_timeout": 30})
    assert proc.returncode != 0
    assert "celery_worker_stop_timeout (30 s) must exceed the app's hard task time limit (90 s)" in " ".join(
        proc.stdout.split()
    )
    assert worker.service("redisops-worker@default.service").systemd_properties["MainPID"] == pid
