"""The planned switchover (playbooks/ops/redis-switchover.yml, runbook
docs/runbooks/redis-failover.md), after the failover tests: one new master, the old
one replicates from it, data kept; under the app's API load (through the proxy and
gunicorn on the client host) and a writer straight at the old master, with no failed
request: the old master's writes are paused only while the switch takes (the role's
redis-sentinel-switchover, one process), well within the app's socket timeout."""

import re
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redisops_testlib.api import ApiLoop, api_url, summary, task_states
from redisops_testlib.ha import Ha, Node, RoleSampler
from redisops_testlib.hosts import STATE_DIR, journal, write_file
from redisops_testlib.playbooks import Ops, ansible_playbook
from redisops_testlib.polling import wait_for


class DirectWriter:
    """SET app:ha:sw:<i> on one node's address (no Sentinel: what a client still
    connected to the old master does), every 20 ms, one redis-cli each (over TLS when
    the scenario's Redis serves it): one line per write, "<epoch ms> <i> <first line
    of the reply>"."""

    def __init__(self, ha: Ha, node: Node) -> None:
        self.ha, self.path = ha, f"{STATE_DIR}/direct-writes"
        script = (
            f"i=0; while [ ! -e {self.path}.stop ]; do i=$((i+1));"
            f" r=$(REDISCLI_AUTH=$PW timeout 3 redis-cli --no-auth-warning -h {node.address} -p {ha.redis_port}"
            f" {ha.cli_tls} --user app"
            f' SET app:ha:sw:$i $i 2>&1 | head -n 1); echo "$(date +%s%3N) $i $r" >>{self.path}; sleep 0.02; done'
        )
        write_file(ha.client, f"{self.path}.sh", script)
        ha.client.check_output(f"rm -f {self.path} {self.path}.stop")
        env = f"PW={shlex.quote(ha.extra_users['app'])}"
        ha.client.check_output(f"{env} setsid bash {self.path}.sh >/dev/null 2>&1 </dev/null &")

    def stop(self) -> list[tuple[int, str, str]]:
        self.ha.client.check_output(f"touch {self.path}.stop")
        time.sleep(4)
        lines = self.ha.client.file(self.path).content_string.splitlines()
        return [(int(ms), i, " ".join(rest)) for ms, i, *rest in (ln.split() for ln in lines if ln)]


@contextmanager
def _api_load(ha: Ha, stats: dict[str, dict]) -> Iterator[dict[str, ApiLoop]]:
    """Stream and task requests through the app's API from the client host: each loop
    20 requests in before the block runs and 20 more after it; their statistics land
    in `stats` (stream, task) however the block ends."""
    base = api_url(ha.client.backend.hostname)
    # timeout: a request may wait 30 s (the default is 15): under CI load (load
    # average 18 on 2 cores) one /api/stream took over 15 s across the switchover:
    # late, not failed (the slowest is printed by the tests).
    loops = {mode: ApiLoop(ha.client, base, mode, seconds=600, timeout=30) for mode in ("stream", "task")}
    try:
        for loop in loops.values():
            loop.wait_ok(20)
        yield loops
        for loop in loops.values():
            loop.wait_ok(20)
    finally:
        stats.update({mode: loop.stop() for mode, loop in loops.items()})


def _missing(ha: Ha, node: Node, ids: list[str]) -> list[str]:
    """The ids whose key app:ha:sw:<id> the node lacks (one EXISTS per 200 keys, then per key)."""
    missing = []
    for chunk in (ids[k : k + 200] for k in range(0, len(ids), 200)):
        if ha.app(node, "EXISTS", *[f"app:ha:sw:{i}" for i in chunk]) != str(len(chunk)):
            missing += [i for i in chunk if ha.app(node, "EXISTS", f"app:ha:sw:{i}") != "1"]
    return missing


def test_switchover_under_load_loses_no_acknowledged_write(ha: Ha):
    before = wait_for(ha.agreed_master, timeout=60)
    assert ha.app(before, "SET", "app:ha:before-switchover", "kept") == "OK"
    assert before.host.check_output("redis-admin WAIT 2 5000") == "2"
    base = api_url(ha.client.backend.hostname)
    writer = DirectWriter(ha, before)
    stats: dict[str, dict] = {}
    try:
        with _api_load(ha, stats) as loops:
            started_ms = int(ha.client.check_output("date +%s%3N"))
            started = time.monotonic()
            out = Ops(before.name).ok("redis-switchover", limit="redis_sentinels")
            took = time.monotonic() - started
    finally:
        writes = writer.stop()
    stream_stats, task_stats, tasks = stats["stream"], stats["task"], loops["task"]
    after = wait_for(ha.agreed_master, timeout=30)
    paused = re.search(r"writes were paused for (\d+) ms", out)
    assert paused, out[-3000:]
    pause_ms = int(paused.group(1))
    print(f"SWITCHOVER: {before.name} -> {after.name}, playbook {took:.1f} s, old master's writes paused {pause_ms} ms")
    print(f"API under the switchover: stream {summary(stream_stats)}; tasks {summary(task_stats)}")
    acked = [i for _, i, reply in writes if reply == "OK"]
    acked_late = [i for ms, i, reply in writes if reply == "OK" and ms >= started_ms]
    refused = sorted({(r.split() or ["(no reply)"])[0] for ms, _, r in writes if r != "OK" and ms >= started_ms})
    missing = _missing(ha, after, acked)
    print(
        f"direct writes to the old master: {len(writes)} sent, {len(acked)} acknowledged"
        f" ({len(acked_late)} after the switchover started), refused after it: {refused}, lost: {len(missing)}"
    )
    if stream_stats.get("errors") or task_stats.get("errors"):
        # Why a request failed: the web's warnings and errors of the switchover.
        # (A diagnosis only: a journal that cannot be read prints its error, never fails the test.)
        try:
            log = journal(ha.client, "redisops-web.service", since=f"-{int(took) + 60}s", output="short")
        except AssertionError as exc:
            log = f"ERROR reading the journal: {exc}"
        print(
            "web journal, warnings and errors:",
            *[ln for ln in log.splitlines() if "WARNING" in ln or "ERROR" in ln][-40:],
            sep="\n  ",
        )
    assert after != before
    assert "the old master replicates from the new one" in out
    assert ha.masters() == [after.name]
    info = ha.replication(before)
    assert info["role"] == "slave", info
    assert info["master_host"] == after.address, info
    assert ha.app(after, "GET", "app:ha:before-switchover") == "kept"
    # The pause stays within its bound, below the app's 5 s socket timeout (spread over
    # several Ansible tasks it lasted 5-10 s). No request fails: one whose connection
    # the switchover drops is sent again to the new master (the app's Sentinel clients
    # retry, django_app test_sentinel_failover.py::
    # test_a_write_in_flight_when_the_switchover_drops_it_is_sent_again; without it 1
    # of ~150-230 got 503 "redis unavailable" in each run).
    assert pause_ms < ha.vars.get("redis_sentinel_switchover_pause_ms", 5000)
    for stats in (stream_stats, task_stats):
        assert stats.get("requests", 0) > 0, stats
        assert not stats.get("errors"), stats.get("errors")
    assert acked_late, "the writer ran during the switchover"
    assert missing == [], f"acknowledged by the old master, missing on the new one: {missing[:20]}"

    # Every task the API accepted ran: none was lost with the broker's switch.
    def all_succeeded() -> dict[str, int]:
        states = task_states(ha.client, base, loop=tasks)
        assert set(states) == {"SUCCESS"}, f"task states: {states}"
        return states

    try:
        states = wait_for(all_succeeded, timeout=120)
    except AssertionError:
        # Why (a diagnosis only): the worker's journal of the last minutes.
        try:
            log = journal(ha.client, "redisops-worker@*", since="-5min", output="short")
        except AssertionError as exc:
            log = f"ERROR reading the journal: {exc}"
        print("worker journal, last lines:", *log.splitlines()[-60:], sep="\n  ")
        raise
    print(f"tasks accepted during the switchover: {states}")


def test_switchover_refuses_when_a_sentinel_does_not_answer(ha: Ha):
    # The two others would agree; the playbook still asks no Sentinel anything.
    master = wait_for(ha.agreed_master, timeout=60)
    stopped = ha.nodes[0]
    stopped.host.check_output("systemctl stop redis-sentinel")
    try:
        proc = Ops(master.name).run("redis-switchover", limit="redis_sentinels")
    finally:
        stopped.host.check_output("systemctl start redis-sentinel")
    assert proc.returncode != 0
    assert "Could not connect" in proc.stdout, proc.stdout[-3000:]
    assert "Switch over (redis-sentinel-switchover)" not in proc.stdout
    assert wait_for(ha.agreed_master, timeout=60) == master


def _config(node: Node, name: str) -> str:
    return node.host.check_output(f"redis-admin CONFIG GET {name}").splitlines()[1]


def _started(node: Node) -> int:
    """When redis-server last started, on the kernel's monotonic clock (µs; the
    containers share it, so the nodes' times compare)."""
    return int(node.host.check_output("systemctl show -p ExecMainStartTimestampMonotonic --value redis-server"))


def test_a_setting_that_needs_a_restart_restarts_the_replicas_first_and_the_master_after_a_switchover(ha: Ha, scenario):
    """A changed redis.conf setting, under the app's API load: the replicas restart one
    at a time (each in sync before the next), the master not at all until a switchover
    made it a replica (roles/redis_server/tasks/restart.yml, the plays at the end of
    playbooks/sentinel.yml); never two masters, never the master down, no failed request."""
    setting = "latency-monitor-threshold"
    before = wait_for(ha.agreed_master, timeout=60)
    value = "100" if _config(before, setting) != "100" else "50"
    extra = {"redis_server_config": {**ha.vars.get("redis_server_config", {}), setting: value}}
    started = {n.name: _started(n) for n in ha.nodes}
    sampler = RoleSampler(ha, "restart-order")
    stats: dict[str, dict] = {}
    try:
        sampler.wait_started()
        with _api_load(ha, stats):
            proc = ansible_playbook(scenario.dir / "converge-redis-sentinel.yml", extra)
            assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    finally:
        samples = sampler.stop()
    stream_stats, task_stats = stats["stream"], stats["task"]
    after = wait_for(ha.agreed_master, timeout=30)
    restarted = {n.name: _started(n) for n in ha.nodes}
    order = sorted(ha.nodes, key=lambda n: restarted[n.name])
    print(f"restart order: {[n.name for n in order]}; master {before.name} -> {after.name}")
    print(f"API during the converge: stream {summary(stream_stats)}; tasks {summary(task_stats)}")
    columns = {n.name: i + 1 for i, n in enumerate(ha.nodes)}
    masters = [sum(s[i] == "master" for i in columns.values()) for s in samples]
    down = [[n for n, i in columns.items() if s[i] == "down"] for s in samples]
    print(f"sampled ROLE {len(samples)} times: masters per sample {sorted(set(masters))}")
    # Every node restarted, and now runs with the setting.
    assert all(restarted[n] != started[n] for n in started), (started, restarted)
    assert all(_config(n, setting) == value for n in ha.nodes)
    # The master last, after the switchover made it a replica; the replicas one at a time.
    assert after != before
    assert order[-1] == before, [n.name for n in order]
    # Two masters only within the switchover, while the old one's writes are paused
    # (redis-sentinel-switchover: CLIENT PAUSE WRITE until it replicates from the new).
    both = [s for s, m in zip(samples, masters, strict=True) if m > 1]
    pause_ms = ha.vars.get("redis_sentinel_switchover_pause_ms", 5000)
    assert not both or int(both[-1][0]) - int(both[0][0]) <= pause_ms, both[:5]
    assert all({n for n, i in columns.items() if s[i] == "master"} == {before.name, after.name} for s in both)
    assert all(len(d) <= 1 for d in down), [s for s, d in zip(samples, down, strict=True) if len(d) > 1][:5]
    old = columns[before.name]
    first_down = next((k for k, d in enumerate(down) if before.name in d), None)
    if first_down is not None:
        assert any(s[old] == "slave" for s in samples[:first_down]), "the master went down before it was a replica"
    for stats in (stream_stats, task_stats):
        assert stats.get("requests", 0) > 0, stats
        assert not stats.get("errors"), stats.get("errors")
    # Done: the same inventory again restarts nothing.
    pids = {n.name: _started(n) for n in ha.nodes}
    proc = ansible_playbook(scenario.dir / "converge-redis-sentinel.yml", extra)
    assert proc.returncode == 0, proc.stdout[-5000:]
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", proc.stdout, re.M))
    print(f"the same inventory again: {recap}")
    assert all(recap[n.name] == "0" for n in ha.nodes), recap
    assert {n.name: _started(n) for n in ha.nodes} == pids
