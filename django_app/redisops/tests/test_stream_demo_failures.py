"""The demo failure rules (redisops/streams/demo_failures.py): on only with
APP_STREAM_DEMO_FAILURES=true, as the Molecule scenarios and drills run them."""

from __future__ import annotations

import time

import pytest
import redis

from redisops.streams import dlq_name
from redisops.streams.demo_failures import (
    DependencyDownError,
    PoisonEntryError,
    demo_handler,
    outage_key,
)
from redisops.streams.producer import produce
from redisops.tests.conftest import manage, wait_for
from redisops.tests.stream_helpers import consumer, effects


@pytest.fixture
def dependency(r: redis.Redis, uid: str):
    """A simulated downstream outage, cleared at the end in any case."""
    name = f"payments-{uid}"
    yield name
    r.delete(outage_key(name))


def test_poison_entry_always_fails(r: redis.Redis, stream: str) -> None:
    c = consumer(r, stream, "A", handler=demo_handler)
    with pytest.raises(PoisonEntryError, match="poison entry 1-1"):
        demo_handler(c, "1-1", {"poison": ""})


def test_depends_on_fails_only_while_its_outage_key_exists(
    r: redis.Redis, stream: str, dependency: str
) -> None:
    c = consumer(r, stream, "A", handler=demo_handler)
    fields = {"depends_on": dependency}
    demo_handler(c, "1-1", fields)  # up: no error
    r.set(outage_key(dependency), "1")
    assert outage_key(dependency) == f"app:outage:{dependency}"
    with pytest.raises(DependencyDownError, match=f"{dependency} is down"):
        demo_handler(c, "1-1", fields)
    r.delete(outage_key(dependency))
    demo_handler(c, "1-1", fields)


def test_work_ms_takes_that_long(r: redis.Redis, stream: str) -> None:
    c = consumer(r, stream, "A", handler=demo_handler)
    started = time.monotonic()
    demo_handler(c, "1-1", {"work_ms": "300"})
    assert time.monotonic() - started >= 0.3


def test_non_ascii_digits_in_work_ms_do_not_crash_the_handler(
    r: redis.Redis, stream: str
) -> None:
    entry = produce(r, stream, {"work_ms": "\u00b2"}, 1000)  # "²".isdigit()
    c = consumer(r, stream, "A", handler=demo_handler)
    c.ensure_group()
    c.read_new()
    assert effects(r, stream) == {entry: 1}
    assert c.stats.failed == 0


@pytest.mark.parametrize("demo", [False, True], ids=["default", "demo-on"])
def test_stream_consumer_applies_demo_rules_only_when_enabled(
    r: redis.Redis, stream: str, dependency: str, spawn, demo: bool
) -> None:
    """The service as deployed: by default poison and depends_on entries are
    applied like any other; with APP_STREAM_DEMO_FAILURES=true they fail until
    dead-lettered (max deliveries 2, claim idle 200 ms)."""
    r.set(outage_key(dependency), "1")
    plain = produce(r, stream, {"n": "1"}, 1000)
    poison = produce(r, stream, {"poison": "yes"}, 1000)
    down = produce(r, stream, {"depends_on": dependency}, 1000)
    env = {"APP_STREAM_DEMO_FAILURES": "true"} if demo else {}
    proc = spawn(
        manage(
            "stream_consumer",
            "--stream",
            stream,
            "--consumer",
            "A",
            "--block-ms",
            "100",
            "--claim-idle-ms",
            "200",
            "--max-deliveries",
            "2",
        ),
        name="consumer-demo" if demo else "consumer-default",
        **env,
    )
    if demo:
        wait_for(lambda: r.xlen(dlq_name(stream)) == 2, timeout=20, what="DLQ")
        assert effects(r, stream) == {plain: 1}
        sources = {f["dlq_source_id"] for _, f in r.xrange(dlq_name(stream))}
        assert sources == {poison, down}
        assert "APP_STREAM_DEMO_FAILURES is on" in proc.output
    else:
        wait_for(lambda: len(effects(r, stream)) == 3, timeout=20, what="applied")
        assert effects(r, stream) == {plain: 1, poison: 1, down: 1}
        assert r.xlen(dlq_name(stream)) == 0
        assert "APP_STREAM_DEMO_FAILURES" not in proc.output
