"""The app units' sandbox, tried from inside it: an extra instance of the worker unit
(redisops-worker@egressprobe: the real unit file and sandbox drop-in, only its
command replaced) runs a probe as the app user. Each denial has a control outside
the unit that succeeds, so it cannot pass for another reason."""

import json
import re
import shlex

from redisops_testlib.hosts import host_address, write_file

INSTANCE = "redisops-worker@egressprobe.service"
PROBE = "/usr/local/share/redisops-tests/egress_probe.py"
OUT = "/run/redisops-egress-probe.json"
# Connects to each host:port given, reports "connected" or the error, and
# what it can see in /proc.
PROBE_CODE = """
import json, os, socket, sys
def connect(target):
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=8).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__ + ": " + str(exc)
print(json.dumps({"connect": {t: connect(t) for t in sys.argv[1:]},
                  "pid1_visible": os.path.exists("/proc/1"),
                  "own_visible": os.path.exists("/proc/%d" % os.getpid())}))
"""


def _control(host, target: str) -> str:
    """The probe's connect, outside any unit (as root in the container)."""
    out = host.check_output(f"python3 {PROBE} {shlex.quote(target)}")
    return json.loads(out)["connect"][target]


def _run_in_worker_sandbox(worker, *targets: str) -> dict:
    fact = json.loads(worker.file("/etc/ansible/facts.d/django_app.fact").content_string)
    dropin = f"/run/systemd/system/{INSTANCE}.d"
    env_file = f"{fact['conf_dir']}/worker-egressprobe.env"
    unit = (
        "[Service]\nType=oneshot\nRestart=no\nExecStart=\n"
        f"ExecStart=/usr/bin/python3 {PROBE} {' '.join(targets)}\nStandardOutput=file:{OUT}\n"
    )
    try:
        write_file(worker, f"{dropin}/probe.conf", unit)
        worker.check_output(f"touch {env_file} && rm -f {OUT} && systemctl daemon-reload")
        r = worker.run(f"systemctl start {INSTANCE}")
        assert r.rc == 0, worker.run(f"journalctl --no-pager -n 30 -u {INSTANCE}").stdout
        return json.loads(worker.file(OUT).content_string)
    finally:
        worker.run(f"rm -rf {dropin} {env_file} {OUT}; systemctl daemon-reload; systemctl reset-failed {INSTANCE}")


def test_app_service_reaches_redis_and_nothing_else(worker, web):
    write_file(worker, PROBE, PROBE_CODE)
    # Redis as the worker reaches it: by name (so DNS too), on the TLS port.
    url = worker.check_output("cat /etc/redisops/worker.env")
    redis_target = re.search(r"@([^:/@]+:\d+)/", url).group(1)
    # Another host of the network that listens: the web host's TLS proxy.
    outsider = f"{host_address(web)}:443"
    assert _control(worker, outsider) == "connected"
    seen = _run_in_worker_sandbox(worker, redis_target, outsider)
    print("from inside the worker's sandbox:", seen)
    assert seen["connect"][redis_target] == "connected"
    # The filter drops the packets: the connect times out (a closed port would refuse).
    assert "timed out" in seen["connect"][outsider], seen


def test_app_service_sees_no_other_users_processes(worker):
    write_file(worker, PROBE, PROBE_CODE)
    seen = _run_in_worker_sandbox(worker)
    assert (seen["pid1_visible"], seen["own_visible"]) == (False, True), seen
    # Control: the app user outside the unit sees PID 1.
    assert worker.run("runuser -u redisops -- test -e /proc/1").rc == 0


def test_app_units_carry_the_memory_and_task_limits(web, worker):
    """The values only: these containers' cgroup v1 memory and pids controllers are
    read-only, so systemd cannot enforce them here (a real host does)."""
    for host, unit in ((web, "redisops-web.service"), (worker, "redisops-worker@default.service")):
        mem_kb = int(host.check_output("awk '/^MemTotal:/ {print $2}' /proc/meminfo"))
        props = host.check_output(f"systemctl show -p MemoryMax -p TasksMax {unit}").splitlines()
        assert sorted(props) == sorted([f"MemoryMax={int(mem_kb // 1024 * 0.5) * 1024 * 1024}", "TasksMax=1024"])
