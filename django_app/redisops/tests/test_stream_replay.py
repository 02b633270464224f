"""Replaying the dead-letter stream (redisops/streams/replay.py): atomic per
batch, so concurrent runs and entries failing again meanwhile are safe."""

from __future__ import annotations

import threading

import redis

from redisops.streams import dlq_name
from redisops.streams.replay import ReplayResult, replay_dead_letters
from redisops.tests.conftest import wait_for


def test_concurrent_runs_move_each_entry_once(r: redis.Redis, stream: str) -> None:
    """Two replays racing over the same 300 entries: every entry lands in the
    stream exactly once (the script skips ids the other run already moved)."""
    dlq = dlq_name(stream)
    with r.pipeline(transaction=False) as pipe:
        for i in range(300):
            pipe.xadd(dlq, {"n": str(i), "dlq_reason": "X()"})
        pipe.execute()
    results: list[ReplayResult] = []

    def run() -> None:
        results.append(replay_dead_letters(r.client(), stream, maxlen=10_000, batch=7))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(int(f["n"]) for _, f in r.xrange(stream)) == list(range(300))
    assert sum(len(res.moved) for res in results) == 300
    assert r.xlen(dlq) == 0


def test_entries_dead_lettered_during_the_run_wait_for_the_next(
    r: redis.Redis, stream: str
) -> None:
    """A run moves what the DLQ held at its start: an entry failing again
    while it runs can't make it loop."""
    dlq = dlq_name(stream)
    with r.pipeline(transaction=False) as pipe:
        for i in range(200):
            pipe.xadd(dlq, {"n": str(i)})
        pipe.execute()
    late: list[str] = []

    def add_late() -> None:
        wait_for(lambda: r.xlen(stream) > 0, what="the replay's first move")
        late.extend(r.xadd(dlq, {"n": f"late{i}"}) for i in range(20))

    adder = threading.Thread(target=add_late)
    adder.start()
    result = replay_dead_letters(r.client(), stream, maxlen=10_000, batch=1)
    adder.join(10)
    assert len(result.moved) == 200
    assert [entry_id for entry_id, _ in r.xrange(dlq)] == late
    assert not any(f["n"].startswith("late") for _, f in r.xrange(stream))
