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
    """On 6.2+. Redis 6.0 has no CLIENT PAUSE ... WRITE nor CLIENT UNPAUSE, which a
    switchover that loses no write needs: there the entry point refuses, before anything
    changes (what is asserted on 6.0; roles/redis_sentinel/README.md, "Sentinel 6.0")."""
    before = wait_for(ha.agreed_master, timeout=60)
    if not ha.sentinel_acl:
        proc = Ops(before.name).run("redis-switchover", limit="redis_sentinels")
        assert proc.returncode != 0, proc.stdout[-3000:]
        assert "refused: Redis/Sentinel before 6.2 has no CLIENT PAUSE WRITE" in " ".join(proc.stdout.split())
        assert wait_for(ha.agreed_master, timeout=30) == before
        assert ha.app(before, "SET", "app:ha:not-switched", "written") == "OK", "the old master takes writes"
        return
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
        # The switchover script's own timeline (UTC, as the journal's), to set beside it.
        print("switchover timeline:", *re.findall(r"\d\d:\d\d:\d\d\.\d{3} [^\n\"\\]*", out), sep="\n  ")
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
    except AssertionError as exc:
        # Why (a diagnosis only): where the broker holds the tasks that did not run
        # (still queued, or taken and unacknowledged: back only after the visibility
        # timeout), and the worker's warnings. In the assertion message: CI keeps
        # only the short summary of a failed test.
        raise AssertionError(f"{exc}\n{_broker_diagnosis(ha, after)}") from None
    print(f"tasks accepted during the switchover: {states}")


def _broker_diagnosis(ha: Ha, master: Node) -> str:
    lines = []
    for command in ("LLEN broker:default", "HLEN broker:unacked", "ZCARD broker:unacked_index"):
        reply = master.host.run(f"redis-admin {command}")
        lines.append(f"{command}: {reply.stdout.strip() or reply.stderr.strip()}")
    try:
        log = journal(ha.client, "redisops-worker@*", since="-5min", output="short")
    except AssertionError as exc:
        log = f"ERROR reading the journal: {exc}"
    # A logged traceback is one journal line with literal \n: its first and last lines.
    parts = [ln.split(" task=- ", 1)[-1].split("\\n") for ln in log.splitlines() if "WARNING" in ln or "ERROR" in ln]
    warnings = [f"{p[0][:160]} ... {p[-1][:160]}" if len(p) > 1 else p[0][:240] for p in parts]
    return "\n".join(["broker on the new master:", *lines, "worker warnings and errors:", *warnings[-15:]])


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


def _log(node: Node, since: str) -> list[tuple[float, str]]:
    """redis-server's journal on the node since a time: (epoch s, message) per line."""
    out = journal(node.host, "redis-server", since=since, output="short-unix")
    return [(float(t), m) for t, _, m in (ln.partition(" ") for ln in out.splitlines()) if t[:1].isdigit()]


def _first(log: list[tuple[float, str]], pattern: str) -> float | None:
    return next((t for t, m in log if re.search(pattern, m)), None)


# A replica in sync again after its restart (full or partial resynchronization).
SYNCED = r"MASTER <-> REPLICA sync: (Finished with success|Master accepted a Partial Resynchronization)"
STOPPED = r"Received SIGTERM"
# The old master told to replicate (Sentinel's REPLICAOF in the switchover).
DEMOTED = r"Connecting to MASTER|REPLICAOF .* enabled|MASTER MODE disabled"


def _roles(samples: list[list[str]], nodes: list[Node], role: str) -> list[set[str]]:
    return [{n.name for i, n in enumerate(nodes) if s[i + 1] == role} for s in samples]


def _sampled_run(ha: Ha, scenario, playbook: str, extra: dict) -> tuple[str, str, list[list[str]]]:
    """Run one of the scenario's playbooks with ROLE sampled throughout: when it began
    (journalctl --since), its output, the samples. Fails when the playbook fails."""
    since = ha.client.check_output("date '+%Y-%m-%d %H:%M:%S'")
    sampler = RoleSampler(ha, f"restart-order-{playbook}")
    try:
        sampler.wait_started()
        proc = ansible_playbook(scenario.dir / playbook, extra)
    finally:
        samples = sampler.stop()
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return since, proc.stdout, samples


def test_a_setting_that_needs_a_restart_restarts_the_replicas_first_and_the_master_after_a_switchover(ha: Ha, scenario):
    """A changed redis.conf setting, under the app's API load, as an operator rolls it
    out: playbooks/redis.yml restarts the replicas one at a time, each in sync before
    the next stops (roles/redis_server/tasks/restart.yml, redis-restart-in-sync), and
    leaves the master running with the old setting, saying so; playbooks/sentinel.yml
    then switches over and restarts the old master, a replica by then (the plays at its
    end). One master at every sample but within the switchover's write pause, never two
    nodes down, no failed request; the same inventory again restarts nothing."""
    setting = "latency-monitor-threshold"
    before = wait_for(ha.agreed_master, timeout=60)
    old_value = _config(before, setting)
    value = "100" if old_value != "100" else "50"
    extra = {"redis_server_config": {**ha.vars.get("redis_server_config", {}), setting: value}}
    replicas = [n for n in ha.nodes if n != before]
    started = {n.name: _started(n) for n in ha.nodes}
    stats: dict[str, dict] = {}
    stats_2: dict[str, dict] = {}
    refused = ""
    with _api_load(ha, stats):
        # 1. The Redis layer alone.
        since_1, redis_only, samples_1 = _sampled_run(ha, scenario, "converge-redis.yml", extra)
    after_1 = {n.name: _started(n) for n in ha.nodes}
    values_1 = {n.name: _config(n, setting) for n in ha.nodes}
    logs_1 = {n.name: _log(n, since_1) for n in replicas}
    if not ha.sentinel_acl:
        # Redis 6.0: the switchover refuses (no CLIENT PAUSE WRITE), so the Sentinel
        # layer stops there, the master untouched; the operator fails over by hand
        # (docs/runbooks/redis-failover.md), then runs the Sentinel layer again. A
        # failover by hand is a failover, not a switchover: under load it refused about
        # one write in ten (NOREPLICAS until the replicas reattached), what the kill -9
        # drill bounds. So it runs between the two loads; the rolling restarts in them
        # must cost no request on 6.0 either.
        proc = ansible_playbook(scenario.dir / "converge-sentinel.yml", extra)
        refused = proc.stdout
        assert _started(before) == after_1[before.name]
        assert _config(before, setting) == old_value
        before.host.check_output(f"redis-sentinel-admin SENTINEL FAILOVER {ha.master_name}")
        wait_for(lambda: ha.agreed_master() not in (None, before), timeout=30)
        # Sentinel converts the old master a few seconds later: until then it still
        # says master, and the Sentinel layer would wait for a switchover again.
        wait_for(lambda: ha.role(before) == "slave", timeout=60)
    with _api_load(ha, stats_2):
        # 2. Then the Sentinel layer (site.yml runs it after the Redis layer).
        since_2, _, samples_2 = _sampled_run(ha, scenario, "converge-sentinel.yml", extra)
    after = wait_for(ha.agreed_master, timeout=30)
    restarted = {n.name: _started(n) for n in ha.nodes}
    for layer, run in (("redis.yml", stats), ("sentinel.yml", stats_2)):
        print(f"API during {layer}: stream {summary(run['stream'])}; tasks {summary(run['task'])}")
    print(f"master {before.name} -> {after.name}; ROLE sampled {len(samples_1)} + {len(samples_2)} times")

    # 1. The replicas restarted, the master did not, still runs with the old value and
    # the run says why.
    assert all(after_1[n.name] != started[n.name] for n in replicas), (started, after_1)
    assert after_1[before.name] == started[before.name], "the master restarted in redis.yml"
    assert values_1[before.name] == old_value
    assert all(values_1[n.name] == value for n in replicas), values_1
    assert "waits for a switchover" in redis_only, redis_only[-3000:]
    # One at a time: the second replica stopped only after the first was in sync again.
    first, second = sorted(replicas, key=lambda n: after_1[n.name])
    synced = _first(logs_1[first.name], SYNCED)
    stopped = _first(logs_1[second.name], STOPPED)
    print(f"{first.name} in sync at {synced}; {second.name} stopped at {stopped}")
    assert synced is not None, logs_1[first.name][-20:]
    assert stopped is not None, logs_1[second.name][-20:]
    assert synced < stopped, (synced, stopped)
    assert all(m == {before.name} for m in _roles(samples_1, ha.nodes, "master")), "one master, the same, in redis.yml"
    assert all(len(d) <= 1 for d in _roles(samples_1, ha.nodes, "down"))

    # 2. A switchover, then the old master's restart, a replica by then.
    assert after != before
    assert restarted[before.name] != after_1[before.name], "the old master restarted in sentinel.yml"
    assert all(restarted[n.name] == after_1[n.name] for n in replicas), "the replicas did not restart again"
    assert all(_config(n, setting) == value for n in ha.nodes)
    log_2 = _log(before, since_2)
    demoted, stopped = _first(log_2, DEMOTED), _first(log_2, STOPPED)
    print(f"old master {before.name}: told to replicate at {demoted}, stopped at {stopped}")
    assert stopped is not None, log_2[-30:]
    if ha.sentinel_acl:
        assert demoted is not None, log_2[-30:]
        assert demoted < stopped, (demoted, stopped)
    # (On 6.0 the failover by hand demoted it before the Sentinel layer ran: a
    # replica by then, waited for above; its log's first DEMOTED line is the
    # reconnect after the restart.)
    if not ha.sentinel_acl:
        assert "refused: Redis/Sentinel before 6.2 has no CLIENT PAUSE WRITE" in " ".join(refused.split()), refused[
            -3000:
        ]
    # Two masters only within the switchover (redis-sentinel-switchover pauses the old
    # one's writes until it replicates from the new): the new and the old, for no longer
    # than the pause, and before the old one is seen as a replica. (On 6.0 the failover
    # by hand came before these samples.)
    masters = _roles(samples_2, ha.nodes, "master")
    two = [int(s[0]) for s, m in zip(samples_2, masters, strict=True) if len(m) > 1]
    old_column = 1 + ha.nodes.index(before)
    replica_at = next((int(s[0]) for s in samples_2 if s[old_column] == "slave"), None)
    pause_ms = ha.vars.get("redis_sentinel_switchover_pause_ms", 5000)
    assert all(m in ({before.name}, {after.name}, {before.name, after.name}) for m in masters), masters
    assert not two or two[-1] - two[0] <= pause_ms, two
    assert not two or (replica_at is not None and two[-1] < replica_at), (two, replica_at)
    assert all(len(d) <= 1 for d in _roles(samples_2, ha.nodes, "down"))
    for loop_stats in (*stats.values(), *stats_2.values()):
        assert loop_stats.get("requests", 0) > 0, loop_stats
        assert not loop_stats.get("errors"), loop_stats.get("errors")
    # Done: the same inventory again restarts nothing.
    proc = ansible_playbook(scenario.dir / "converge-redis-sentinel.yml", extra)
    assert proc.returncode == 0, proc.stdout[-5000:]
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", proc.stdout, re.M))
    print(f"the same inventory again: {recap}")
    assert all(recap[n.name] == "0" for n in ha.nodes), recap
    assert {n.name: _started(n) for n in ha.nodes} == restarted


def _replica_flags(ha: Ha, sentinel: Node, replica: Node) -> str:
    """The flags the node's Sentinel gives the replica (SENTINEL REPLICAS, as its admin)."""
    lines = sentinel.host.check_output(f"redis-sentinel-admin SENTINEL REPLICAS {ha.master_name}").splitlines()
    entries: list[dict[str, str]] = []
    for key, value in zip(lines[0::2], lines[1::2], strict=False):
        if key == "name":
            entries.append({})
        if entries:
            entries[-1][key] = value
    return next((e.get("flags", "") for e in entries if e.get("ip") == replica.address), "")


def test_a_replica_out_of_sync_stops_the_restart_of_the_next_one(ha: Ha):
    """The handler restarts replicas one host after the other (throttle 1), and Ansible
    goes on with the next host even when the one before failed: redis-restart-in-sync
    itself refuses to restart a replica while the Sentinels see another one unlinked
    (with min-replicas-to-write, two replicas out of sync make the master refuse
    writes). Tried: one replica stopped, the restart of the other refused."""
    master = wait_for(ha.agreed_master, timeout=60)
    this, other = [n for n in ha.nodes if n != master]
    started = _started(this)
    other.host.check_output("systemctl stop redis-server")
    try:
        # Every Sentinel flags it down (after down-after): the helper asks whichever answers.
        wait_for(lambda: all("s_down" in _replica_flags(ha, n, other) for n in ha.nodes), timeout=ha.down_after_s + 30)
        proc = this.host.run("redis-restart-in-sync 10")
        print(proc.stderr)
        assert proc.rc == 1, proc.stdout + proc.stderr
        assert "not restarted" in proc.stderr
        assert other.address in proc.stderr
        assert _started(this) == started, "the replica was restarted"
    finally:
        other.host.check_output("systemctl start redis-server")
    wait_for(lambda: ha.replication(other).get("master_link_status") == "up", timeout=60)
    wait_for(lambda: all(_replica_flags(ha, n, other) == "slave" for n in ha.nodes), timeout=60)
    # With both linked again it restarts this one.
    proc = this.host.run("redis-restart-in-sync 60")
    assert proc.rc == 0, proc.stderr
    assert _started(this) != started
