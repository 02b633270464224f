"""Consumer groups that lose nothing and process each entry once."""

from __future__ import annotations

import logging
import signal
import threading
from collections import Counter

import pytest
import redis
from django.core.management import CommandError, call_command

from redisops import streams
from redisops.streams import StreamConsumer
from redisops.tests.conftest import manage, wait_for


def consumer(r: redis.Redis, stream: str, name: str, **kw) -> StreamConsumer:
    kw.setdefault("claim_idle_ms", 200)
    kw.setdefault("block_ms", 100)
    kw.setdefault("max_deliveries", 3)
    return StreamConsumer(r, stream, "workers", name, **kw)


def run_in_thread(c: StreamConsumer) -> threading.Thread:
    t = threading.Thread(target=c.run, daemon=True)
    t.start()
    return t


def pending_consumers(r: redis.Redis, stream: str) -> list[str]:
    try:
        return [
            p["consumer"] for p in r.xpending_range(stream, "workers", "-", "+", 10)
        ]
    except redis.ResponseError:  # NOGROUP: the consumer has not started yet
        return []


def effects(r: redis.Redis, stream: str) -> dict[str, int]:
    return {k: int(v) for k, v in r.hgetall(streams.effects_key(stream)).items()}


@pytest.fixture
def stream(uid: str) -> str:
    return f"app:stream:test-{uid}"


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


def test_group_from_id_0_sees_entries_written_before_it(
    r: redis.Redis, stream: str
) -> None:
    """The seed created the group at '$' and skipped what was already there."""
    ids = [streams.produce(r, stream, {"n": str(i)}, 1000) for i in range(3)]
    c = consumer(r, stream, "c1")
    c.ensure_group()
    c.read_new()
    assert set(effects(r, stream)) == set(ids)
    assert r.xpending(stream, "workers")["pending"] == 0


def test_ensure_group_ignores_only_busygroup(r: redis.Redis, stream: str) -> None:
    c = consumer(r, stream, "c1")
    c.ensure_group()
    c.ensure_group()  # BUSYGROUP: fine
    r.set(f"{stream}:notastream", "x")
    other = consumer(r, f"{stream}:notastream", "c1")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        other.ensure_group()


def test_producer_caps_the_stream_approximately(r: redis.Redis, stream: str) -> None:
    for i in range(500):
        streams.produce(r, stream, {"n": str(i)}, maxlen=100)
    assert 100 <= r.xlen(stream) < 500


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
    )
    entry = streams.produce(r, stream, {"work_ms": "3000"}, 1000)
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
    entry = streams.produce(r, stream, {"work_ms": "800"}, 1000)
    a = consumer(r, stream, "A", claim_idle_ms=200)
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
    good = streams.produce(r, stream, {"n": "1"}, 1000)
    poison = streams.produce(r, stream, {"poison": "yes"}, 1000)
    c = consumer(r, stream, "A", max_deliveries=3, autoclaim=autoclaim)
    thread = run_in_thread(c)
    wait_for(lambda: r.xlen(streams.dlq_name(stream)) == 1, timeout=15, what="DLQ")
    c.stop()
    thread.join(5)
    [(_, dead)] = r.xrange(streams.dlq_name(stream))
    assert dead["dlq_source_id"] == poison
    assert dead["dlq_deliveries"] == "3"
    assert "poison" in dead["dlq_reason"]
    assert effects(r, stream) == {good: 1}
    assert r.xpending(stream, "workers")["pending"] == 0
    assert int(r.hget(streams.progress_key(stream), "dead_lettered")) == 1
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
    import time

    ids = [streams.produce(r, stream, {"n": str(i)}, 1000) for i in range(4)]
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
    import time

    for i in range(3):
        streams.produce(r, stream, {"n": str(i)}, 1000)
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
    assert int(r.hget(streams.progress_key(stream), "trimmed_unprocessed")) == 3
    assert "trimmed while pending" in caplog.text
    assert r.xpending(stream, "workers")["pending"] == 0
    assert streams.progress(r, stream, "workers")["trimmed_unprocessed"] == 3


def test_non_ascii_digits_in_work_ms_do_not_crash_the_handler(
    r: redis.Redis, stream: str
) -> None:
    entry = streams.produce(r, stream, {"work_ms": "\u00b2"}, 1000)  # "²".isdigit()
    c = consumer(r, stream, "A")
    c.ensure_group()
    c.read_new()
    assert effects(r, stream) == {entry: 1}
    assert c.stats.failed == 0


def test_block_ms_must_stay_below_the_socket_timeout(
    r: redis.Redis, stream: str
) -> None:
    with pytest.raises(ValueError, match="socket timeout"):
        consumer(r, stream, "A", block_ms=5000)  # app client: 5 s socket timeout
    with pytest.raises(CommandError, match="socket timeout"):
        call_command("stream_consumer", "--stream", stream, "--block-ms", "6000")


def test_sigterm_stops_cleanly_without_losing_entries(
    r: redis.Redis, stream: str, spawn
) -> None:
    ids = [streams.produce(r, stream, {"work_ms": "300"}, 1000) for _ in range(6)]
    proc = spawn(
        manage(
            "stream_consumer",
            "--stream",
            stream,
            "--consumer",
            "A",
            "--block-ms",
            "200",
            "--batch",
            "10",
        ),
        name="consumer-sigterm",
    )
    wait_for(lambda: len(effects(r, stream)) >= 1, timeout=20, what="first entry")
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0, proc.output
    done_before = set(effects(r, stream))
    assert done_before < set(ids)  # stopped mid-batch
    # The same consumer name restarts and finishes its own pending entries.
    restarted = consumer(r, stream, "A")
    thread = run_in_thread(restarted)
    wait_for(lambda: set(effects(r, stream)) == set(ids), timeout=15, what="the rest")
    restarted.stop()
    thread.join(5)
    assert all(v == 1 for v in effects(r, stream).values())


def test_progress_reports_the_group(r: redis.Redis, stream: str) -> None:
    streams.produce(r, stream, {"n": "1"}, 1000)
    c = consumer(r, stream, "A")
    c.ensure_group()
    c.read_new()
    info = streams.progress(r, stream, "workers")
    assert info["group_exists"]
    assert info["processed"] == 1
    assert info["pending"] == 0
    assert info["length"] == 1


def test_trim_forgets_effects_of_trimmed_entries(r: redis.Redis, stream: str) -> None:
    c = consumer(r, stream, "A", batch=1000)
    for i in range(300):
        streams.produce(r, stream, {"n": str(i)}, 10_000)
    c.ensure_group()
    c.read_new()
    assert len(effects(r, stream)) == 300
    result = streams.trim(r, stream, maxlen=10)
    assert result["effects_pruned"] > 0
    assert len(effects(r, stream)) == r.xlen(stream)


@pytest.mark.parametrize("batch_commit", [True, False], ids=["batched", "per-entry"])
def test_commit_is_one_script_call_per_batch(
    r: redis.Redis, stream: str, batch_commit: bool
) -> None:
    ids = [streams.produce(r, stream, {"n": str(i)}, 1000) for i in range(7)]
    c = consumer(r, stream, "A", batch=10, batch_commit=batch_commit)
    c.ensure_group()
    calls: list[list[str]] = []
    original = c.commit_many

    def spy(entry_ids: list[str]) -> list[bool]:
        calls.append(list(entry_ids))
        return original(entry_ids)

    c.commit_many = spy  # type: ignore[method-assign]
    assert c.read_new() == 7
    assert calls == ([ids] if batch_commit else [[i] for i in ids])
    assert effects(r, stream) == dict.fromkeys(ids, 1)
    assert r.xpending(stream, "workers")["pending"] == 0
    # Redelivered (e.g. claimed after a crash between handler and commit): the
    # batch commit acks them without a second effect.
    assert c.commit_many(ids[:3]) == [False] * 3
    assert effects(r, stream) == dict.fromkeys(ids, 1)
    assert c.stats.processed == 7
    assert c.stats.duplicates == 3


def test_slow_handlers_commit_without_waiting_for_the_batch(
    r: redis.Redis, stream: str
) -> None:
    """max_commit_delay bounds how long a handled entry waits for its commit."""
    for i in range(3):
        streams.produce(r, stream, {"work_ms": "60", "n": str(i)}, 1000)
    c = consumer(r, stream, "A", batch=10, max_commit_delay=0.05)
    c.ensure_group()
    sizes: list[int] = []
    original = c.commit_many
    c.commit_many = lambda ids: sizes.append(len(ids)) or original(ids)  # type: ignore[method-assign]
    c.read_new()
    assert sizes == [1, 1, 1]
