"""Replaying the dead-letter stream: `manage.py replay_dlq` on the real server,
with the demo failure rules (APP_STREAM_DEMO_FAILURES, as the drills run it)
and without (the default)."""

from __future__ import annotations

from io import StringIO

import pytest
import redis
from django.core.management import CommandError, call_command

from redisops import streams
from redisops.streams import Handler
from redisops.streams.demo_failures import demo_handler, outage_key
from redisops.tests.conftest import wait_for
from redisops.tests.stream_helpers import consumer, effects, run_in_thread


@pytest.fixture
def demo_failures(settings) -> None:
    """replay_dlq as the drills run it: APP_STREAM_DEMO_FAILURES=true."""
    settings.APP_STREAM_DEMO_FAILURES = True


@pytest.fixture
def dependency(r: redis.Redis, uid: str):
    """A simulated downstream outage, cleared at the end in any case."""
    name = f"payments-{uid}"
    yield name
    r.delete(outage_key(name))


def replay(stream: str, *args: str) -> str:
    out = StringIO()
    call_command("replay_dlq", "--stream", stream, *args, stdout=out)
    return out.getvalue()


def dead_letter_all(
    r: redis.Redis,
    stream: str,
    fields: list[dict[str, str]],
    handler: Handler = demo_handler,
) -> list:
    """Produce the entries and run a consumer until every one is dead-lettered."""
    ids = [streams.produce(r, stream, f, 1000) for f in fields]
    c = consumer(r, stream, "A", max_deliveries=2, handler=handler)
    thread = run_in_thread(c)
    wait_for(
        lambda: r.xlen(streams.dlq_name(stream)) == len(ids), timeout=15, what="DLQ"
    )
    c.stop()
    thread.join(5)
    return ids


@pytest.mark.usefixtures("demo_failures")
def test_entry_failed_during_an_outage_succeeds_on_replay(
    r: redis.Redis, stream: str, dependency: str
) -> None:
    r.set(outage_key(dependency), "1")
    [original] = dead_letter_all(r, stream, [{"depends_on": dependency, "n": "7"}])
    [(_, dead)] = r.xrange(streams.dlq_name(stream))
    assert dead["dlq_source_id"] == original
    assert "DependencyDownError" in dead["dlq_reason"]
    assert effects(r, stream) == {}

    # Dry run: counts and names the dependency as still down, moves nothing.
    out = replay(stream, "--dry-run")
    assert "reason          1  DependencyDownError" in out
    assert f"{dependency}: still DOWN" in out
    assert "dry run, would move 1 entries" in out
    assert r.xlen(streams.dlq_name(stream)) == 1

    r.delete(outage_key(dependency))  # the on-call's fix
    out = replay(stream)
    assert f"moved 1 entries from {streams.dlq_name(stream)}" in out
    assert "0 left" in out
    assert r.xlen(streams.dlq_name(stream)) == 0
    [(new_id, fields)] = r.xrange(stream, f"({original}", "+")
    assert fields == {"depends_on": dependency, "n": "7"}  # no dlq_* fields
    assert int(r.hget(streams.progress_key(stream), "replayed")) == 1

    c = consumer(r, stream, "B", max_deliveries=2, handler=demo_handler)
    thread = run_in_thread(c)
    wait_for(lambda: new_id in effects(r, stream), timeout=10, what="processed")
    c.stop()
    thread.join(5)
    assert effects(r, stream) == {new_id: 1}
    assert r.xlen(streams.dlq_name(stream)) == 0

    # A second run finds nothing to move.
    assert "moved 0 entries" in replay(stream)
    assert r.xlen(stream) == 2


def test_poison_entry_comes_back_after_replay(r: redis.Redis, stream: str) -> None:
    dead_letter_all(r, stream, [{"poison": "yes"}])
    assert "moved 1 entries" in replay(stream)
    c = consumer(r, stream, "A", max_deliveries=2, handler=demo_handler)
    thread = run_in_thread(c)
    wait_for(lambda: r.xlen(streams.dlq_name(stream)) == 1, timeout=15, what="DLQ")
    c.stop()
    thread.join(5)
    [(_, dead)] = r.xrange(streams.dlq_name(stream))
    assert "PoisonEntryError" in dead["dlq_reason"]
    assert effects(r, stream) == {}


class DownstreamRefusedError(Exception):
    """What a real handler raises when its downstream says no."""


def refuse(_consumer: object, entry_id: str, _fields: dict[str, str]) -> None:
    raise DownstreamRefusedError(f"entry {entry_id} refused")


def test_dry_run_without_demo_rules_counts_by_reason_only(
    r: redis.Redis, stream: str, dependency: str
) -> None:
    """The default (APP_STREAM_DEMO_FAILURES off): depends_on is plain data and
    app:outage:<name> means nothing, so neither is reported."""
    r.set(outage_key(dependency), "1")
    dead_letter_all(r, stream, [{"depends_on": dependency}, {"n": "2"}], handler=refuse)
    out = replay(stream, "--dry-run")
    assert "reason          2  DownstreamRefusedError" in out
    assert "depends_on" not in out
    assert "DOWN" not in out
    assert "dry run, would move 2 entries" in out
    assert r.xlen(streams.dlq_name(stream)) == 2


@pytest.mark.usefixtures("demo_failures")
def test_dry_run_with_demo_rules_says_which_dependency_is_down(
    r: redis.Redis, stream: str, dependency: str
) -> None:
    r.set(outage_key(dependency), "1")
    dead_letter_all(r, stream, [{"depends_on": dependency}, {"poison": "1"}])
    out = replay(stream, "--dry-run")
    assert "reason          1  DependencyDownError" in out
    assert "reason          1  PoisonEntryError" in out
    assert f"depends_on      1  {dependency}: still DOWN" in out
    r.delete(outage_key(dependency))
    assert f"depends_on      1  {dependency}: up" in replay(stream, "--dry-run")


def test_max_moves_the_oldest_first(r: redis.Redis, stream: str) -> None:
    dlq = streams.dlq_name(stream)
    for i in range(5):
        r.xadd(dlq, {"n": str(i), "dlq_reason": "X('boom')", "dlq_source_id": "1-0"})
    out = replay(stream, "--max", "2", "--batch", "1")
    assert "moved 2 entries" in out
    assert "3 left" in out
    assert [f["n"] for _, f in r.xrange(stream)] == ["0", "1"]
    assert [f["n"] for _, f in r.xrange(dlq)] == ["2", "3", "4"]


def test_empty_dead_letter_stream_moves_nothing(r: redis.Redis, stream: str) -> None:
    out = replay(stream)
    assert "moved 0 entries" in out
    assert "0 left" in out
    assert r.exists(stream) == 0


@pytest.mark.parametrize("args", [["--max", "0"], ["--batch", "-1"], ["--max", "x"]])
def test_bad_arguments_are_refused(stream: str, args: list[str]) -> None:
    with pytest.raises(CommandError, match="invalid positive value"):
        replay(stream, *args)
