"""Claiming entries a dead or slow consumer left pending, on both claim paths
(redisops/streams/claiming.py): XAUTOCLAIM (Redis >= 6.2) and XPENDING +
XCLAIM (Redis 6.0). The test server has both commands; each test proves which
one ran."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter

import pytest
import redis

from redisops.streams import dlq_name, progress, progress_key
from redisops.streams.demo_failures import demo_handler
from redisops.streams.producer import produce
from redisops.tests.conftest import manage, wait_for
from redisops.tests.stream_helpers import (
    consumer,
    effects,
    pending_consumers,
    run_in_thread,
)


@pytest.fixture
def claim_calls(r: redis.Redis, monkeypatch) -> Counter:
    """Counts the claim commands the client sends (XAUTOCLAIM, XCLAIM)."""
    calls: Counter = Counter()
    for name in ("xautoclaim", "xclaim"):
        original = getattr(r, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(r, name, spy)
    return calls


def test_entry_of_a_killed_consumer_is_processed_once_by_another(
    r: redis.Redis, stream: str, spawn
) -> None:
    """Consumer A (a real process) is SIGKILLed mid-entry, before XACK."""
    a = spawn(
        manage(
            "stream_consumer",
            "--stream",
            stream,
            "--consumer",
            "A",
            "--claim-idle-ms",
            "60000",
            "--block-ms",
            "200",
        ),
        name="consumer-a",
        APP_STREAM_DEMO_FAILURES="true",  # work_ms: A is mid-entry when killed
    )
    entry = produce(r, stream, {"work_ms": "3000"}, 1000)
    wait_for(
        lambda: "A" in pending_consumers(r, stream),
        timeout=20,
        what="consumer A to take the entry",
    )
    a.signal(signal.SIGKILL)
    a.wait(timeout=5)
    assert entry not in effects(r, stream)  # A died before finishing

    b = consumer(r, stream, "B")
    thread = run_in_thread(b)
    wait_for(
        lambda: effects(r, stream).get(entry) == 1, timeout=15, what="B to process"
    )
    b.stop()
    thread.join(5)
    assert effects(r, stream) == {entry: 1}
    assert r.xpending(stream, "workers")["pending"] == 0
    assert b.stats.claimed == 1


def test_entry_claimed_from_a_slow_consumer_has_its_effect_once(
    r: redis.Redis, stream: str
) -> None:
    """A is slow, not dead: B claims the entry after claim_idle_ms and both
    finish it. The processed-once marker keeps the effect single."""
    entry = produce(r, stream, {"work_ms": "800"}, 1000)
    a = consumer(r, stream, "A", claim_idle_ms=200, handler=demo_handler)
    b = consumer(r, stream, "B", claim_idle_ms=200)
    a.ensure_group()
    thread_a = threading.Thread(target=a.read_new)
    thread_a.start()
    wait_for(lambda: "A" in pending_consumers(r, stream), what="A to take the entry")
    wait_for(lambda: b.claim_stale(), timeout=5, what="B to claim")
    thread_a.join(5)
    assert effects(r, stream) == {entry: 1}
    assert a.stats.processed + b.stats.processed == 1
    assert a.stats.duplicates + b.stats.duplicates == 1
    assert r.xpending(stream, "workers")["pending"] == 0


@pytest.mark.parametrize(
    "autoclaim", [True, False], ids=["XAUTOCLAIM", "XPENDING+XCLAIM"]
)
def test_poison_entry_ends_in_the_dead_letter_stream(
    r: redis.Redis, stream: str, autoclaim: bool, claim_calls: Counter
) -> None:
    """Both claim paths, each proven to be the one that ran (Redis 7.0 has
    both commands; autoclaim=False is the Redis 6.0 path)."""
    good = produce(r, stream, {"n": "1"}, 1000)
    poison = produce(r, stream, {"poison": "yes"}, 1000)
    c = consumer(
        r, stream, "A", max_deliveries=3, autoclaim=autoclaim, handler=demo_handler
    )
    thread = run_in_thread(c)
    wait_for(lambda: r.xlen(dlq_name(stream)) == 1, timeout=15, what="DLQ")
    c.stop()
    thread.join(5)
    [(_, dead)] = r.xrange(dlq_name(stream))
    assert dead["dlq_source_id"] == poison
    assert dead["dlq_deliveries"] == "3"
    assert "poison" in dead["dlq_reason"]
    assert effects(r, stream) == {good: 1}
    assert r.xpending(stream, "workers")["pending"] == 0
    assert int(r.hget(progress_key(stream), "dead_lettered")) == 1
    used, unused = ("xautoclaim", "xclaim") if autoclaim else ("xclaim", "xautoclaim")
    assert claim_calls[used] >= 2  # the poison entry was claimed twice
    assert claim_calls[unused] == 0


def test_claim_method_is_detected_once_unless_given(
    r: redis.Redis, stream: str
) -> None:
    c = consumer(r, stream, "A")
    assert c.uses_autoclaim is True  # the test server is Redis >= 6.2
    forced = consumer(r, stream, "B", autoclaim=False)
    forced.ensure_group()
    forced.read_new()
    forced.claim_stale()
    assert forced.uses_autoclaim is False  # never overwritten by detection


@pytest.mark.parametrize("autoclaim", [True, False], ids=["XAUTOCLAIM", "XCLAIM"])
def test_fresh_pending_entries_do_not_hide_stale_ones(
    r: redis.Redis, stream: str, autoclaim: bool, claim_calls: Counter
) -> None:
    """The pending list starts with entries just delivered to a busy consumer;
    the stale ones behind them are still claimed (the cursor pages on)."""
    ids = [produce(r, stream, {"n": str(i)}, 1000) for i in range(4)]
    r.xgroup_create(stream, "workers", id="0")
    r.xreadgroup("workers", "dead", {stream: ">"}, count=4)
    time.sleep(0.6)  # all four idle > claim_idle_ms
    r.xclaim(stream, "workers", "busy", 0, ids[:2])  # the first two: fresh again
    b = consumer(r, stream, "B", batch=2, claim_idle_ms=500, autoclaim=autoclaim)
    claimed = sum(b.claim_stale() for _ in range(3))
    assert claimed == 2
    assert set(effects(r, stream)) == set(ids[2:])
    assert {
        p["consumer"] for p in r.xpending_range(stream, "workers", "-", "+", 10)
    } == {"busy"}
    assert claim_calls["xclaim" if not autoclaim else "xautoclaim"] >= 2
    if autoclaim:
        assert claim_calls["xclaim"] == 1  # only the test's own XCLAIM above
    else:
        assert claim_calls["xautoclaim"] == 0


@pytest.mark.parametrize("path", ["own-pending", "XAUTOCLAIM", "XCLAIM"])
def test_entries_trimmed_while_pending_are_counted_and_logged(
    r: redis.Redis, stream: str, path: str, caplog
) -> None:
    for i in range(3):
        produce(r, stream, {"n": str(i)}, 1000)
    r.xgroup_create(stream, "workers", id="0")
    owner = "A" if path == "own-pending" else "dead"
    r.xreadgroup("workers", owner, {stream: ">"}, count=3)
    r.xtrim(stream, maxlen=0, approximate=False)  # MAXLEN drops the backlog
    time.sleep(0.25)
    c = consumer(r, stream, "A", autoclaim=path != "XCLAIM")
    with caplog.at_level(logging.WARNING, logger="redisops.streams"):
        if path == "own-pending":
            c.process_own_pending()
        else:
            c.claim_stale()
    assert c.stats.trimmed_unprocessed == 3
    assert int(r.hget(progress_key(stream), "trimmed_unprocessed")) == 3
    assert "trimmed while pending" in caplog.text
    assert r.xpending(stream, "workers")["pending"] == 0
    assert progress(r, stream, "workers")["trimmed_unprocessed"] == 3
