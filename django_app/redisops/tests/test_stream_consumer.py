"""A consumer group member that loses nothing and applies each entry once
(redisops/streams/consumer.py, commits in redisops/streams/acks.py)."""

from __future__ import annotations

import signal
import time

import pytest
import redis
from django.core.management import CommandError, call_command

from redisops.streams import apply_entry
from redisops.streams.producer import produce
from redisops.tests.conftest import manage, wait_for
from redisops.tests.stream_helpers import consumer, effects, run_in_thread


def test_group_from_id_0_sees_entries_written_before_it(
    r: redis.Redis, stream: str
) -> None:
    """The seed created the group at '$' and skipped what was already there."""
    ids = [produce(r, stream, {"n": str(i)}, 1000) for i in range(3)]
    c = consumer(r, stream, "c1")
    c.ensure_group()
    c.read_new()
    assert set(effects(r, stream)) == set(ids)
    assert r.xpending(stream, "workers")["pending"] == 0


def test_default_handler_applies_every_entry_even_demo_looking_ones(
    r: redis.Redis, stream: str
) -> None:
    """Demo failure rules are not the default: work_ms, poison and depends_on
    are plain data to apply_entry (the outage key is set and ignored)."""
    r.set(f"app:outage:{stream}", "1")
    try:
        ids = [
            produce(r, stream, fields, 1000)
            for fields in (
                {"poison": "yes"},
                {"depends_on": stream},
                {"work_ms": "10000"},
            )
        ]
        c = consumer(r, stream, "A")
        assert c.handler is apply_entry
        c.ensure_group()
        started = time.monotonic()
        assert c.read_new() == 3
        assert time.monotonic() - started < 2  # work_ms did not wait
    finally:
        r.delete(f"app:outage:{stream}")
    assert effects(r, stream) == dict.fromkeys(ids, 1)
    assert c.stats.failed == 0


def test_ensure_group_ignores_only_busygroup(r: redis.Redis, stream: str) -> None:
    c = consumer(r, stream, "c1")
    c.ensure_group()
    c.ensure_group()  # BUSYGROUP: fine
    r.set(f"{stream}:notastream", "x")
    other = consumer(r, f"{stream}:notastream", "c1")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        other.ensure_group()


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
    ids = [produce(r, stream, {"work_ms": "300"}, 1000) for _ in range(6)]
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
        APP_STREAM_DEMO_FAILURES="true",  # work_ms: SIGTERM lands mid-batch
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


@pytest.mark.parametrize("batch_commit", [True, False], ids=["batched", "per-entry"])
def test_commit_is_one_script_call_per_batch(
    r: redis.Redis, stream: str, batch_commit: bool
) -> None:
    ids = [produce(r, stream, {"n": str(i)}, 1000) for i in range(7)]
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
        produce(r, stream, {"n": str(i)}, 1000)
    c = consumer(
        r,
        stream,
        "A",
        batch=10,
        max_commit_delay=0.05,
        handler=lambda *_: time.sleep(0.06),
    )
    c.ensure_group()
    sizes: list[int] = []
    original = c.commit_many
    c.commit_many = lambda ids: sizes.append(len(ids)) or original(ids)  # type: ignore[method-assign]
    c.read_new()
    assert sizes == [1, 1, 1]


def test_the_service_caps_its_dead_letters_at_the_setting(spawn) -> None:
    """stream_consumer passes APP_STREAM_DLQ_MAXLEN to its XADD MAXLEN ~."""
    proc = spawn(
        manage("stream_consumer", "--consumer", "dlq-cap"),
        name="consumer",
        APP_STREAM_DLQ_MAXLEN="7",
    )
    wait_for(lambda: "dead letters kept ~7," in proc.output, what="startup line")


def test_consumer_reconnects_after_redis_restart(tmp_path, uid: str) -> None:
    """Redis restarts under a running consumer (no persistence: the group is
    gone too): it backs off, recreates its group and applies new entries,
    instead of dying on the cut connection."""
    from redisops.tests.redis_proc import RedisProcess, free_port

    server = RedisProcess(free_port(), tmp_path / "own-redis")
    server.start()
    try:
        client = redis.Redis.from_url(
            server.url("app_data"), decode_responses=True, socket_timeout=5
        )
        stream = f"app:stream:restart-{uid}"
        c = consumer(client, stream, "A")
        thread = run_in_thread(c)
        before = produce(client, stream, {"n": "1"}, 1000)
        wait_for(lambda: before in effects(client, stream), what="entry before")
        server.restart()
        after = produce(client, stream, {"n": "2"}, 1000)  # redis-py reconnects
        wait_for(
            lambda: after in effects(client, stream),
            timeout=20,
            what="the entry written after the restart, applied",
        )
        assert thread.is_alive()
        c.stop()
        thread.join(10)
    finally:
        server.stop()
