"""Replication and failover on three Redis + Sentinel nodes, in order: replication,
NOREPLICAS past the lag bound, kill -9 of the master under the app's load (the figures:
failover time, error window, lost, duplicated), the app's smoke on the new master, the
old master's rejoin and restart, then a converge that must change nothing."""

import hashlib
import itertools
import re
import shlex
import time
from collections import Counter

from redisops_testlib.api import ApiLoop, api_url, burst, summary, task_state_of_each
from redisops_testlib.ha import Ha, Node, RoleSampler, app_pids, app_smoke
from redisops_testlib.playbooks import ansible_playbook
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import admin, info
from redisops_testlib.scenario import REPO


def _master(ha: Ha) -> Node:
    """The master the Sentinels agree on, which is also the one node whose ROLE is master."""
    master = wait_for(ha.agreed_master, timeout=60)
    assert ha.masters() == [master.name]
    return master


# The master killed by the failover test, for the tests after it.
_killed: dict[str, Node] = {}
# The app's units (MainPID each) before that failover.
_app_before: dict[str, str] = {}


def _pid(node: Node) -> str:
    return node.host.check_output("systemctl show -p MainPID --value redis-server")


def test_replication_works(ha: Ha):
    master = _master(ha)
    assert master.name == ha.nodes[0].name, "the bootstrap primary is master after the converge"
    assert ha.app(master, "SET", "app:ha:replicated", "v1") == "OK"
    for node in ha.nodes[1:]:
        wait_for(lambda n=node: ha.app(n, "GET", "app:ha:replicated") == "v1", timeout=30)
        info = ha.replication(node)
        assert info["role"] == "slave", info
        assert info["master_host"] == master.address, info
        # A replica refuses writes.
        assert ha.app(node, "SET", "app:ha:x", "1").startswith("READONLY")
    assert ha.replication(master)["connected_slaves"] == "2"


def test_write_refused_with_noreplicas_when_replicas_lag_past_the_bound(ha: Ha):
    master = _master(ha)
    replicas = [n for n in ha.nodes if n != master]
    lag = ha.vars["redis_server_min_replicas_max_lag"]
    pids = {n.name: _pid(n) for n in replicas}
    try:
        for n in replicas:
            n.host.check_output(f"kill -STOP {pids[n.name]}")
        started, attempts = time.monotonic(), itertools.count()

        def refused() -> tuple[str, str] | None:
            # A key per attempt: the ones before the lag bound are accepted.
            key = f"app:ha:lagged:{next(attempts)}"
            reply = ha.app(master, "SET", key, "v")
            return (key, reply) if reply.startswith("NOREPLICAS") else None

        key, reply = wait_for(refused, timeout=lag + 20, interval=0.5)
        print(f"NOREPLICAS after {time.monotonic() - started:.1f} s (lag bound {lag} s): {reply}")
        assert ha.app(master, "EXISTS", key) == "0", "the refused write was not stored"
    finally:
        for n in replicas:
            n.host.run(f"kill -CONT {pids[n.name]}")
    wait_for(lambda: ha.app(master, "SET", "app:ha:lagged", "v") == "OK", timeout=lag + 30, interval=0.5)
    assert _master(ha) == master


# The app's Lua scripts (django_app/redisops/lua), by the SHA1 EVALSHA names them with
# (redisops.luascripts); the rate limits run gcra.
APP_SCRIPTS = {
    p.stem: hashlib.sha1(p.read_text().encode()).hexdigest()  # noqa: S324 - Redis's script id
    for p in sorted((REPO / "django_app/redisops/lua").glob("*.lua"))
}
# What each API loop's request answers when it succeeded.
WANT = {"stream": 201, "task": 202, "publish": 200}
# The app's stream (POST /api/stream) and the Pub/Sub listener's record of what it
# received (redisops.pubsub), as django_app's settings name them.
STREAM, PUBSUB_RECORDS = "app:stream:events", "app:pubsub:received"
# A request may still fail this long after every Sentinel named the new master: it
# asked the Sentinels before they did (the app's clients retry a connection error
# 3 times with a backoff, redisops.connections.sentinel_master_retry), and the
# naming itself is seen by polling (a few hundred ms per poll).
ERROR_MARGIN_S = 2
# A request slower than this (s) is counted as slowed down by the failover (printed only:
# on the shared 2 cores a request can be slow for other reasons).
SLOW_S = 1
# The entries of a stream whose field ARGV[1] starts with ARGV[2], each as its id and
# its field ARGV[3]: one read on the node, whatever else the stream holds.
SCAN_LUA = """
local out = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local f, hit, value = e[2], false, ''
  for k = 1, #f, 2 do
    if f[k] == ARGV[1] and string.sub(f[k + 1], 1, #ARGV[2]) == ARGV[2] then hit = true end
    if f[k] == ARGV[3] then value = f[k + 1] end
  end
  if hit then out[#out + 1] = e[1]; out[#out + 1] = value end
end
return out
"""


def _entries(node: Node, key: str, field: str, prefix: str, value: str) -> list[tuple[str, str]]:
    """(id, value) of the entries of stream `key` on the node whose `field` starts with `prefix`."""
    lines = admin(node.host, "EVAL", SCAN_LUA, "1", key, field, prefix, value).splitlines()
    entries = list(zip(lines[0::2], lines[1::2], strict=True))
    assert all(re.fullmatch(r"\d+-\d+", i) for i, _ in entries), lines[:6]
    return entries


def _final_task_states(ha: Ha, base: str, ids: list[str], timeout: float = 120) -> dict[str, str]:
    """The state of each task once all succeeded, or at the timeout (then those not done
    are lost): each poll reads again only the tasks not done yet."""
    states = task_state_of_each(ha.client, base, ids)
    deadline = time.monotonic() + timeout
    while (pending := [t for t, s in states.items() if s != "SUCCESS"]) and time.monotonic() < deadline:
        time.sleep(5)
        states.update(task_state_of_each(ha.client, base, pending))
    return states


def _task_runs(ha: Ha, since_ms: int) -> Counter:
    """How often each redisops.tasks.add ran since since_ms, from the workers' journals
    (Celery logs "Task <name>[<id>] succeeded" at INFO)."""
    units = [u for u in app_pids(ha.client) if "worker" in u]
    assert units, "no worker unit"
    cmd = ["journalctl", "--no-pager", "-o", "cat", f"--since=@{since_ms // 1000}", *[f"-u{u}" for u in units]]
    log = ha.client.check_output(shlex.join(cmd))
    return Counter(re.findall(r"redisops\.tasks\.add\[([0-9a-f-]{36})\] succeeded", log))


def test_kill_9_of_the_master_elects_exactly_one_new_master(ha: Ha, scenario):
    """kill -9 of the master while the app on the client host is under load: XADDs
    (POST /api/stream), tasks (POST /api/tasks) and Pub/Sub (POST /api/publish), each
    request timed. The figures: failover time, error window, lost and duplicated."""
    old = _master(ha)
    assert ha.app(old, "SET", "app:ha:before-failover", "kept") == "OK"
    # Acknowledged by both replicas before the crash (WAIT), so a failover keeps it.
    assert old.host.check_output("redis-admin WAIT 2 5000") == "2"
    # Every app unit running (those that exited on NOREPLICAS above are back).
    _app_before.update(wait_for(lambda: app_pids(ha.client), timeout=60))
    # Which replicas hold the rate limiter's script now (Redis 7.0+ replicates no script).
    gcra = APP_SCRIPTS["gcra"]
    cached_before = {n.name: admin(n.host, "SCRIPT", "EXISTS", gcra) for n in ha.nodes if n != old}
    base = api_url(ha.client.backend.hostname)
    loops = {
        "stream": ApiLoop(ha.client, base, "stream", seconds=240, timeline=True),
        "task": ApiLoop(ha.client, base, "task", seconds=240, timeline=True),
        # Slower: the listener's record keeps the last ~1000 messages (RECORD_MAXLEN).
        "publish": ApiLoop(ha.client, base, "publish", seconds=240, timeline=True, interval=0.1, count=700),
    }
    try:
        for loop in loops.values():
            loop.wait_ok(20)
        kill_ms = int(old.host.check_output(f"kill -9 {_pid(old)}; date +%s%3N"))
        _killed["master"] = old
        new = wait_for(lambda: (m := ha.agreed_master()) and m != old and m, timeout=ha.down_after_s + 30, interval=0.1)
        named_ms = int(time.time() * 1000)
        # Load on the new master, and Pub/Sub delivered again (the listener resubscribed).
        for loop in loops.values():
            loop.wait_ok(30, timeout=120)
        wait_for(
            lambda: [r for r in loops["publish"].stats()["timeline"] if r[1] > named_ms and r[3] == 200 and r[4]],
            timeout=60,
        )
    finally:
        stats = {mode: loop.stop() for mode, loop in loops.items()}
    elapsed = (named_ms - kill_ms) / 1000
    live = [n for n in ha.nodes if n != old]
    masters = [n.name for n in live if ha.role(n) == "master"]
    print(
        f"FAILOVER: master {old.name} killed (-9); {new.name} named by every Sentinel after {elapsed:.1f} s "
        f"(down-after {ha.down_after_s:.0f} s, bound {ha.down_after_s + 10:.0f} s); masters now: {masters}"
    )

    def after_kill(ms: int) -> str:
        return f"{(ms - kill_ms) / 1000:+.1f} s"

    # Errors: every request that did not get its success status, by when it was sent and answered.
    failed = {mode: [r for r in s["timeline"] if r[3] != WANT[mode]] for mode, s in stats.items()}
    for mode, s in stats.items():
        rows = failed[mode]
        window = f", sent {after_kill(rows[0][1])} .. answered {after_kill(rows[-1][2])}" if rows else ""
        statuses = dict(Counter(r[3] for r in rows))
        print(f"  {mode}: {s['requests']} requests, {len(rows)} failed{window} {statuses or ''}; {summary(s)}")
    all_failed = [r for rows in failed.values() for r in rows]
    if all_failed:
        first, last = min(r[1] for r in all_failed), max(r[2] for r in all_failed)
        print(f"ERROR WINDOW: first failed request sent {after_kill(first)}, last answered {after_kill(last)}")
    else:
        print("ERROR WINDOW: none (no request failed)")
    # Where the failover was felt when nothing failed: requests that took over SLOW_S
    # (the app's clients wait and retry until the new master answers).
    slow = [r for s in stats.values() for r in s["timeline"] if r[2] - r[1] > SLOW_S * 1000]
    if slow:
        first, last = min(r[1] for r in slow), max(r[2] for r in slow)
        print(f"SLOW (> {SLOW_S} s): {len(slow)} requests, sent {after_kill(first)} .. answered {after_kill(last)}")

    # Stream entries: those acknowledged (201, the id the API answered) against the
    # entries of this loop on the new master (the drill field, n = the request's index).
    acked = {r[4]: r for r in stats["stream"]["timeline"] if r[3] == 201}
    present = _entries(new, STREAM, "drill", loops["stream"].tag, "n")
    present_ids, per_request = {i for i, _ in present}, Counter(n for _, n in present)
    lost_entries = [r for i, r in acked.items() if i not in present_ids]
    duplicated_entries = sum(c - 1 for c in per_request.values())
    written_though_failed = [r for r in failed["stream"] if per_request[str(r[0])]]
    print(
        f"STREAM: {len(acked)} entries acknowledged, {len(present)} on the new master; lost {len(lost_entries)}, "
        f"duplicated {duplicated_entries}, present though the request failed {len(written_though_failed)}"
    )

    # Tasks: every accepted one (202) must reach SUCCESS; runs counted in the workers' journals.
    accepted = {r[4]: r for r in stats["task"]["timeline"] if r[3] == 202}
    states = _final_task_states(ha, base, list(accepted))
    runs = _task_runs(ha, stats["task"]["timeline"][0][1] - 60_000)
    lost_tasks = [accepted[t] for t, state in states.items() if state != "SUCCESS"]
    ran_twice = {t: runs[t] for t in accepted if runs[t] > 1}
    print(
        f"TASKS: {len(accepted)} accepted, states {dict(Counter(states.values()))}; lost {len(lost_tasks)} "
        f"(of which ran: {sum(runs[r[4]] > 0 for r in lost_tasks)}); ran twice {len(ran_twice)}; "
        f"not seen running in the journal {sum(runs[t] == 0 for t in accepted)}"
    )

    # Pub/Sub: a message with receivers >= 1 reached the listener, which records it in
    # a stream (its XADD is a write like any other); receivers 0 = dropped (Pub/Sub
    # has no delivery guarantee: redisops.pubsub).
    tag = loops["publish"].tag
    published = [r for r in stats["publish"]["timeline"] if r[3] == 200]
    delivered = {f"{tag}-{r[0]}": r for r in published if r[4]}
    dropped = [r for r in published if not r[4]]
    last = max(delivered, key=lambda m: delivered[m][0])
    wait_for(lambda: any(v == last for _, v in _entries(new, PUBSUB_RECORDS, "data", f"{tag}-", "data")))
    recorded = Counter(v for _, v in _entries(new, PUBSUB_RECORDS, "data", f"{tag}-", "data"))
    lost_messages = [r for m, r in delivered.items() if not recorded[m]]
    dropped_when = f" (sent {after_kill(dropped[0][1])} .. answered {after_kill(dropped[-1][2])})" if dropped else ""
    print(
        f"PUBSUB: {len(published)} published, {len(delivered)} delivered, {len(dropped)} dropped "
        f"(no subscriber){dropped_when}; delivered but not recorded (lost) {len(lost_messages)}, "
        f"recorded twice {sum(c - 1 for c in recorded.values())}"
    )

    # The rate limiter on the new master: its script was not there (NOSCRIPT, then SCRIPT LOAD).
    answers = burst(ha.client, f"{base}/api/limited?drill=kill-9", 12, parallel=4)
    statuses = [a["status"] for a in answers]
    denied = [a for a in answers if a["status"] == 429]
    noscript = info(new.host, "errorstats").get("errorstat_NOSCRIPT", "count=0")
    print(
        f"LIMITER after the failover: {dict(Counter(statuses))}; {gcra[:8]} (gcra.lua) cached on the replicas "
        f"before: {cached_before}; new master's NOSCRIPT replies: {noscript}"
    )

    assert elapsed <= ha.down_after_s + 10
    wait_for(lambda: [n.name for n in live if ha.role(n) == "master"] == [new.name], timeout=20)
    assert ha.app(new, "GET", "app:ha:before-failover") == "kept"
    other = next(n for n in live if n != new)
    wait_for(lambda: ha.replication(other).get("master_host") == new.address, timeout=30)
    wait_for(lambda: ha.app(new, "SET", "app:ha:after-failover", "v") == "OK", timeout=30)
    # Errors only inside the window: from the kill until the new master was named
    # (+ ERROR_MARGIN_S); every loop ran on before and after it.
    assert all(kill_ms <= r[2] <= named_ms + ERROR_MARGIN_S * 1000 for r in all_failed), [
        (mode, r[0], after_kill(r[1]), after_kill(r[2]), r[3]) for mode, rows in failed.items() for r in rows
    ]
    for s in stats.values():
        assert s["timeline"][0][2] < kill_ms < s["timeline"][-1][1], "the loop ran across the failover"
    # Lost only within the documented bound (docs/runbooks/redis-failover.md, "What was
    # lost"): a master accepts no write while no replica acknowledged within
    # redis_server_min_replicas_max_lag seconds, so only what it acknowledged in the
    # last lag seconds before the crash can be missing on the new master: a lost one was
    # sent before the kill (only the old master could take it) and answered no earlier
    # than the lag before it (its answer may reach the client just after the kill: one
    # did, 0.1 s after, on the loaded CI machine).
    oldest_ms = kill_ms - ha.vars["redis_server_min_replicas_max_lag"] * 1000
    for what, rows in (("stream entries", lost_entries), ("tasks", lost_tasks), ("messages", lost_messages)):
        within = all(r[1] <= kill_ms and oldest_ms <= r[2] for r in rows)
        assert within, (what, [(r[0], after_kill(r[1]), after_kill(r[2])) for r in rows])
    # The limiter decides (429 past its limit) instead of failing open, on the new master.
    assert denied, statuses
    limit = int(denied[0]["headers"]["RateLimit-Limit"])
    # The scenario's limit (molecule.yml, APP_LIMITED_LIMIT): the app's, not a default.
    assert limit == int(scenario.app_env["APP_LIMITED_LIMIT"]), limit
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) <= limit, statuses
    # The journal shows every task that succeeded: "ran twice" is measured, not assumed 0.
    assert all(runs[t] for t, state in states.items() if state == "SUCCESS"), "a task's run not in the journal"
    if cached_before[new.name] == "0":
        assert noscript != "count=0", "the new master lacked the script: the app had to load it on NOSCRIPT"
    assert admin(new.host, "SCRIPT", "EXISTS", gcra) == "1"


def test_the_app_passes_smoke_after_the_failover_without_a_restart(ha: Ha):
    # Every process asks the Sentinels again: the same processes, on the new master.
    assert _killed["master"] != _master(ha)
    app_smoke()
    now = app_pids(ha.client)
    restarted = [u for u, pid in now.items() if _app_before.get(u) != pid]
    # Why, if one did: what its journal says about errors and exits.
    why = "grep -E 'CRITICAL|Unrecoverable|Traceback|Error|exited' | tail -n 20"
    journal = {u: ha.client.run(f"journalctl --no-pager -o short-precise -u {u} | {why}").stdout for u in restarted}
    assert not restarted, f"app units restarted: {restarted}\n" + "\n".join(f"== {u}\n{j}" for u, j in journal.items())


def test_the_crashed_master_rejoins_as_a_replica(ha: Ha):
    master, old = _master(ha), _killed["master"]
    assert master != old
    # systemd restarts it after redis_server_replication_restart_sec; its start
    # helper asks the Sentinels, who name the new master.
    restart = ha.vars["redis_server_replication_restart_sec"]
    info = wait_for(
        lambda: (i := ha.replication(old)).get("master_link_status") == "up" and i, timeout=restart + 60, interval=1
    )
    assert info["role"] == "slave", info
    assert info["master_host"] == master.address, info
    topology = old.host.file("/run/redis-topology/topology.conf").content_string
    print(f"old master's topology at its restart: {topology!r}")
    assert f"replicaof {master.address} {ha.redis_port}" in topology
    assert "Sentinels" in topology
    assert ha.masters() == [master.name]
    wait_for(lambda: ha.app(old, "GET", "app:ha:after-failover") == "v", timeout=30)


def test_restarting_the_old_master_never_shows_two_masters(ha: Ha):
    master, old = _master(ha), _killed["master"]
    pid_before = _pid(old)
    sampler = RoleSampler(ha, "restart-old-master")
    try:
        sampler.wait_started()
        time.sleep(0.5)
        restarted_ms = time.time() * 1000
        old.host.check_output("systemctl restart redis-server")
        wait_for(lambda: ha.replication(old).get("master_link_status") == "up", timeout=60)
        linked_ms = time.time() * 1000
        time.sleep(1)
    finally:
        samples = sampler.stop()
    masters_per_sample = [sum(role == "master" for role in s[1:]) for s in samples]
    downs = sum("down" in s[1:] for s in samples)
    span = (int(samples[-1][0]) - int(samples[0][0])) / 1000 if samples else 0
    print(f"sampled ROLE of {len(ha.nodes)} nodes {len(samples)} times over {span:.1f} s; old master down in {downs}")
    # The samples cover the restart: it happened (a new pid), and sampling ran from
    # before it until after the link was up (the hosts share the machine's clock). A
    # fast restart may fall between two samples: "down" need not be seen.
    assert _pid(old) != pid_before, "redis-server was restarted"
    assert len(samples) >= 10, "the samples must cover the restart"
    assert int(samples[0][0]) <= restarted_ms, ("sampling began after the restart", samples[0], restarted_ms)
    assert int(samples[-1][0]) >= linked_ms, ("sampling ended before the link was up", samples[-1], linked_ms)
    assert max(masters_per_sample) == 1, [s for s, m in zip(samples, masters_per_sample, strict=True) if m > 1][:5]
    assert all(s[1 + ha.nodes.index(old)] != "master" for s in samples)
    assert _master(ha) == master


def test_converge_after_the_failover_changes_nothing_and_keeps_the_master(ha: Ha, scenario):
    master = _master(ha)
    epochs = {n.name: ha.sentinel_state(n)["config-epoch"] for n in ha.nodes}
    pids = {n.name: _pid(n) for n in ha.nodes}
    # site.yml, as the operator re-runs it (converge-site.yml: the addresses, then site.yml).
    proc = ansible_playbook(scenario.dir / "converge-site.yml")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", proc.stdout, re.M)
    print(f"site.yml after the failover: {recap}")
    assert recap, proc.stdout[-2000:]
    assert all(c == "0" for _, c in recap), proc.stdout[-6000:]
    assert _master(ha) == master
    assert {n.name: _pid(n) for n in ha.nodes} == pids, "nothing restarted"
    assert {n.name: ha.sentinel_state(n)["config-epoch"] for n in ha.nodes} == epochs
    print(f"config-epoch per Sentinel, unchanged: {epochs}")
