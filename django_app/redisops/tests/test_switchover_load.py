"""Writes through the app's Sentinel-managed client (connections.client_from_url)
while redis-sentinel-switchover runs (SentinelGroup.switchover: the role's
steps; a master with two replicas under three Sentinels on loopback): none
fails, none is lost, none waits much longer than the writes are paused, and
no reconnect after the pause reaches the old master."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redisops import redis_acl
from redisops.connections import client_from_url
from redisops.tests.sentinel_proc import SentinelGroup

WRITERS = 6
# A write waiting in the pause is dropped (CLIENT KILL) and sent again after
# the retry's first backoff (connections.sentinel_master_retry: at most 2 s),
# to the new master; 3 s for a machine loaded as in `make test` (these tests
# run beside every Molecule scenario). A retry chain back to the old master
# took 4-14 s; a stale discovery is caught below by the reconnects themselves.
AFTER_THE_PAUSE_BOUND = 5.0


@pytest.fixture(scope="module")
def group3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """Two replicas, as the roles' three-node setup: the Sentinel that fails
    over then has one more replica to reconfigure before its failover ends."""
    g = SentinelGroup(tmp_path_factory.mktemp("sentinel3"), replicas=2)
    try:
        g.start()
        yield g
    finally:
        g.stop()


def sample_sentinels(group: SentinelGroup, stop: threading.Event, out: list) -> None:
    """Each Sentinel's master port every 50 ms, as GET-MASTER-ADDR-BY-NAME
    and as SENTINEL MASTER (what redis-py reads) name it (diagnostics)."""
    clients = [group.sentinel(p) for p in group.sentinel_ports]
    while not stop.is_set():
        row: list[Any] = [time.monotonic()]
        for s in clients:
            try:
                named = s.execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", group.master_name
                )
                flat = s.execute_command("SENTINEL", "MASTER", group.master_name)
                state = dict(zip(flat[::2], flat[1::2], strict=True))
                row.append((int(named[1]), int(state["port"])))
            except redis.RedisError as exc:
                row.append(repr(exc))
        out.append(row)
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("run", range(2))  # there and back
def test_a_switchover_costs_writes_a_pause_not_an_error(
    group3: SentinelGroup, uid: str, run: int
) -> None:
    (user,) = [u for u in redis_acl.USERS if u.env == "REDIS_APP_URL"]
    client = client_from_url(group3.url(user.name))
    proxy = client.connection_pool.proxy
    asked = proxy.get_master_address
    reconnects: list[tuple[float, int]] = []

    def recorded() -> Any:  # which master each (re)connect was given
        address = asked()
        reconnects.append((time.monotonic(), int(address[1])))
        return address

    proxy.get_master_address = recorded
    stop = threading.Event()
    took: list[tuple[float, float]] = []
    failures: list[tuple[float, float, str]] = []
    acknowledged: dict[str, int] = {}

    def writer(n: int) -> None:
        key = f"{redis_acl.APP_PREFIX}switchover-{uid}-{n}"
        i = 0
        while not stop.is_set():
            i += 1
            started = time.monotonic()
            try:
                client.set(key, i, ex=120)
                acknowledged[key] = i
                took.append((started, time.monotonic() - started))
            except redis.RedisError as exc:
                failures.append((started, time.monotonic() - started, repr(exc)))
            time.sleep(0.02)

    samples: list[list[Any]] = []
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    threads.append(
        threading.Thread(target=sample_sentinels, args=(group3, stop, samples))
    )
    old = group3.master_port()
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        new = group3.switchover()
        # Until each writer has written after the pause (or failed for good),
        # at least 2 s (the Sentinels' answers settle).
        time.sleep(2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            len([s for s, _ in took if s > group3.unpaused_at]) < WRITERS * 3
        ):
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(60)

    t0 = group3.paused_at
    paused = group3.unpaused_at - t0
    named = group3.named_at - t0
    print(f"\npaused {paused:.2f} s, every Sentinel named {new} at +{named:.2f}")
    last = None
    for row in samples:
        if row[1:] != last:
            print(f"  {row[0] - t0:+.2f} (by name, MASTER) per Sentinel: {row[1:]}")
            last = row[1:]
    print("reconnects:", [(f"{t - t0:+.2f}", port) for t, port in reconnects])
    slowest = max(d for _, d in took)
    print(f"slowest write {slowest:.2f} s; failures: {failures}")
    assert not failures
    stale = [(t - t0, p) for t, p in reconnects if t > group3.unpaused_at and p == old]
    assert not stale, f"reconnects to the old master after the pause: {stale}"
    assert slowest < paused + AFTER_THE_PAUSE_BOUND
    node = group3.node(new)
    for key, value in acknowledged.items():
        assert int(node.get(key) or 0) >= value, f"{key}: write {value} lost"
