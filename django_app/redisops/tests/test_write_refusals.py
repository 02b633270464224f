"""Redis refusing writes for a while (NOREPLICAS, READONLY): the long-running
processes wait it out in process and resume; the API answers 503 JSON.

A redis-server of the test's own with ``min-replicas-to-write 1`` and no
replica refuses every write with NOREPLICAS, as a master whose replicas lag
or are gone does (the redis_server role sets the option); ``0`` ends the
episode. The fixture restores it whatever happens.
"""

from __future__ import annotations

import contextlib
import gc
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.conf import settings
from kombu import Connection, Queue
from redis.exceptions import ConnectionError as RedisConnectionError

from config.settings.base import redis_settings
from redisops import pubsub, redis_acl, tasks
from redisops.celery_redis import RedisBackend, Transport
from redisops.streams import effects_key
from redisops.streams.producer import produce
from redisops.tests.api_clients import ALICE, bearer
from redisops.tests.conftest import Proc, manage, subprocess_env, wait_for
from redisops.tests.gunicorn_proc import start_gunicorn
from redisops.tests.redis_proc import RedisProcess, free_port, worker_argv
from redisops.write_refusals import (
    WriteRefusals,
    backoff_delay,
    is_write_refused,
    refusal_kind,
)

WARNING_TEXT = "Redis refuses writes (NOREPLICAS"
RESUMED_TEXT = "Redis accepts writes again after"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own, with the app's ACL users."""
    server = RedisProcess(free_port(), tmp_path / "own-redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Episode:
    """Turns NOREPLICAS on and off on ``server`` (admin connection)."""

    def __init__(self, server: RedisProcess) -> None:
        self.admin = redis.Redis.from_url(server.url(), decode_responses=True)

    def start(self) -> None:
        self.admin.config_set("min-replicas-to-write", 1)

    def end(self) -> None:
        self.admin.config_set("min-replicas-to-write", 0)
        self.admin.execute_command("REPLICAOF", "NO", "ONE")

    def begin(self, kind: str) -> None:
        """NOREPLICAS or READONLY from now on."""
        self.start() if kind == "NOREPLICAS" else self.demote()

    def demote(self) -> None:
        """READONLY instead: the server turns replica (of a master that is
        not there, so it keeps its data), as a demoted master does."""
        self.admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))


@pytest.fixture
def episode(own_redis: RedisProcess) -> Iterator[Episode]:
    ep = Episode(own_redis)
    try:
        yield ep
    finally:
        with contextlib.suppress(redis.RedisError):
            ep.end()


def alive_for(proc, seconds: float) -> None:
    """The process is still running ``seconds`` from now (checked every 0.2 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.popen.poll() is None, f"exited:\n{proc.output[-3000:]}"
        time.sleep(0.2)


def warned_or_exited(proc, text: str = WARNING_TEXT) -> None:
    """Wait for the episode's WARNING; a process that exited instead fails
    here, with its output."""
    wait_for(
        lambda: text in proc.output or proc.popen.poll() is not None,
        timeout=20,
        what="the warning",
    )
    assert proc.popen.poll() is None, f"exited:\n{proc.output[-3000:]}"


# -- recognising a refusal ------------------------------------------------------
def test_refusals_are_recognised_in_every_form_redis_sends_them(
    episode: Episode, own_redis: RedisProcess
) -> None:
    """A plain command, a MULTI (redis-py names the command that failed), a
    Lua script: each NOREPLICAS is recognised; other errors and reads are
    not refusals."""
    client = redis.Redis.from_url(own_redis.url("app_data"), decode_responses=True)
    episode.start()
    sha = client.script_load("return redis.call('SET', KEYS[1], 1)")  # no write
    errors = []
    for write in (
        lambda: client.set("app:x", 1),
        lambda: client.xreadgroup("g", "c", {"app:s": ">"}, block=10),
        lambda: client.evalsha(sha, 1, "app:x"),
    ):
        with pytest.raises(redis.ResponseError) as caught:
            write()
        errors.append(caught.value)
    with pytest.raises(redis.ResponseError) as caught, client.pipeline() as pipe:
        pipe.incr("app:y").set("app:z", "NOREPLICAS ").execute()
    errors.append(caught.value)
    assert [refusal_kind(e) for e in errors] == ["NOREPLICAS"] * 4
    assert client.get("app:x") is None  # reads still work
    episode.end()
    episode.demote()
    with pytest.raises(redis.ResponseError) as caught:
        client.set("app:x", 1)
    assert refusal_kind(caught.value) == "READONLY"
    episode.end()
    with pytest.raises(redis.ResponseError) as caught:
        client.execute_command("XADD", "app:s", "bad-id", "k", "v")
    assert not is_write_refused(caught.value)
    # A command argument that looks like a refusal does not make one.
    client.set("app:str", "v")
    with pytest.raises(redis.ResponseError) as caught, client.pipeline() as pipe:
        pipe.lpush("app:str", "NOREPLICAS x").execute()
    assert "NOREPLICAS" in str(caught.value)
    assert not is_write_refused(caught.value)
    assert refusal_kind(redis.exceptions.ReadOnlyError("You can't write")) == (
        "READONLY"
    )
    # Redis 6's form of a script's refusal.
    assert refusal_kind(
        redis.ResponseError(
            "Error running script (call to f_0): @user_script:1: "
            "-NOREPLICAS Not enough good replicas to write."
        )
    ) == ("NOREPLICAS")


def test_backoff_is_bounded_jittered_and_logged_once_per_episode(caplog) -> None:
    delays = [backoff_delay(n, 0.2, 5.0) for n in range(12)]
    assert all(0.1 <= d <= 5.0 for d in delays)
    assert max(delays[6:]) > 2.5  # it grows to the cap's neighbourhood
    assert len({round(backoff_delay(8, 0.2, 5.0), 6) for _ in range(20)}) > 1
    tracker = WriteRefusals("test part")
    exc = redis.ResponseError("NOREPLICAS Not enough good replicas to write.")
    with caplog.at_level("DEBUG", logger="redisops.write_refusals"):
        for _ in range(5):
            tracker.refused(exc)
        tracker.accepted()
        tracker.refused(exc)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2  # one per episode
    assert "test part: Redis refuses writes (NOREPLICAS" in warnings[0].getMessage()
    assert any(
        "accepts writes again" in r.getMessage()
        and "(5 refused attempts)" in r.getMessage()
        for r in caplog.records
    )


# -- the stream consumer --------------------------------------------------------
@pytest.mark.parametrize("kind", ["NOREPLICAS", "READONLY"])
def test_consumer_waits_out_noreplicas_and_processes_each_entry_once(
    own_redis: RedisProcess, episode: Episode, spawn, kind: str
) -> None:
    """The service (manage.py stream_consumer) is handling an entry (demo
    work_ms) when the master starts refusing writes, so its commit is
    refused, and a second entry waits in its pending list. It stays up, logs
    one WARNING for the episode, and once writes return commits the held entry
    and processes the other: each effect exactly once, nothing pending, no
    dead letter. The same when the server is demoted to a replica (READONLY)
    and promoted back."""
    warning = f"Redis refuses writes ({kind}"
    url = own_redis.url("app_data")
    client = redis.Redis.from_url(url, decode_responses=True)
    stream = f"app:stream:noreplicas-{uuid.uuid4().hex[:8]}"
    proc = spawn(
        manage(
            "stream_consumer",
            "--stream",
            stream,
            "--consumer",
            "NR",
            "--block-ms",
            "200",
        ),
        name="consumer",
        REDIS_TEST_APP_URL=url,
        APP_STREAM_DEMO_FAILURES="true",
    )
    warm = produce(client, stream, {"n": "0"}, 1000)
    wait_for(
        lambda: client.hget(effects_key(stream), warm), timeout=30, what="warm-up entry"
    )
    slow = produce(client, stream, {"n": "1", "work_ms": "2500"}, 1000)
    queued = produce(client, stream, {"n": "2"}, 1000)
    wait_for(
        lambda: client.xpending(stream, "workers")["pending"] >= 1,
        timeout=10,
        interval=0.02,
        what="the slow entry in hand",
    )
    episode.begin(kind)
    warned_or_exited(proc, warning)
    alive_for(proc, 6)
    assert client.hget(effects_key(stream), slow) is None  # its commit was refused
    assert client.hget(effects_key(stream), queued) is None
    assert proc.output.count(warning) == 1, proc.output
    episode.end()

    def done() -> bool:
        effects = client.hgetall(effects_key(stream))
        return (
            slow in effects
            and queued in effects
            and client.xpending(stream, "workers")["pending"] == 0
        )

    wait_for(done, timeout=30, what="both entries committed after the episode")
    assert client.hgetall(effects_key(stream)) == {warm: "1", slow: "1", queued: "1"}
    assert client.xlen(f"{stream}:dlq") == 0
    wait_for(lambda: RESUMED_TEXT in proc.output, timeout=10, what="resume line")
    alive_for(proc, 1)


# -- the Pub/Sub listener -------------------------------------------------------
@pytest.mark.parametrize("kind", ["NOREPLICAS", "READONLY"])
def test_listener_stays_subscribed_through_noreplicas_and_records_after(
    own_redis: RedisProcess, episode: Episode, spawn, kind: str
) -> None:
    """PUBLISH is no write: during the episode the listener (manage.py
    pubsub_listener) still receives, holds what it cannot record, stays up,
    and records it, in order, once writes return; later messages too. The
    same when the server is demoted to a replica (READONLY) and promoted back."""
    warning = f"Redis refuses writes ({kind}"
    url = own_redis.url("app_data")
    client = redis.Redis.from_url(url, decode_responses=True)
    record = f"app:pubsub:noreplicas-{uuid.uuid4().hex[:8]}"
    proc = spawn(
        manage("pubsub_listener", "--name", "NRL", "--record-stream", record),
        name="listener",
        REDIS_TEST_APP_URL=url,
    )
    wait_for(lambda: "NRL" in pubsub.listeners(client), timeout=30, what="listener")
    episode.begin(kind)
    during = [uuid.uuid4().hex for _ in range(2)]
    for token in during:
        assert pubsub.publish(client, "noreplicas", token) == 1
    warned_or_exited(proc, warning)
    alive_for(proc, 6)
    assert client.xlen(record) == 0
    assert proc.output.count(warning) == 1, proc.output
    episode.end()
    wait_for(
        lambda: (
            [r["data"] for r in pubsub.received(client, record, 10)][::-1] == during
        ),
        timeout=20,
        what="the held messages recorded in order",
    )
    after = uuid.uuid4().hex
    assert pubsub.publish(client, "noreplicas", after) == 1
    wait_for(
        lambda: pubsub.received(client, record, 1)[0]["data"] == after,
        timeout=10,
        what="a message after the episode recorded",
    )
    assert RESUMED_TEXT in proc.output
    wait_for(lambda: "NRL" in pubsub.listeners(client), timeout=10, what="presence")
    alive_for(proc, 0.5)


# -- the API ------------------------------------------------------------------------
def test_api_answers_503_json_while_writes_are_refused(
    own_redis: RedisProcess, episode: Episode, tmp_path: Path
) -> None:
    """A real gunicorn on that Redis: writes answer 503 with the reason and a
    Retry-After (never a 500 or a traceback), for NOREPLICAS and for READONLY
    (the server demoted to a replica); reads still answer; after the episode
    writes succeed again."""
    urls = {
        name: own_redis.url(user)
        for name, user in (
            ("REDIS_BROKER_URL", "app_broker"),
            ("REDIS_RESULT_URL", "app_results"),
            ("REDIS_CACHE_URL", "app_cache"),
            ("REDIS_APP_URL", "app_data"),
            ("REDIS_BUDGET_URL", "app_budget"),
        )
    }
    web = start_gunicorn(tmp_path / "gunicorn", **urls)
    headers = {"X-Forwarded-Proto": "https", **bearer(ALICE)}
    try:
        entry = {"fields": {"k": "v"}}
        assert web.via_socket("POST", "/api/stream", headers, entry).status == 201
        episode.start()
        for path, body in (
            ("/api/stream", entry),
            ("/api/tasks", {"task": "add", "args": {"x": 1, "y": 2}}),
        ):
            answer = web.via_socket("POST", path, headers, body)
            assert answer.status == 503, (path, answer)
            assert answer.json == {
                "error": "redis refuses writes: too few replicas in sync "
                "(min-replicas-to-write)"
            }
            assert answer.headers["retry-after"] == "5"
        read = web.via_socket("GET", "/api/stream", headers)
        assert read.status == 200, read
        episode.end()
        episode.demote()
        answer = web.via_socket("POST", "/api/stream", headers, entry)
        assert answer.status == 503, answer
        assert answer.json == {
            "error": "redis refuses writes: the server is a replica now (failover)"
        }
        episode.end()
        assert web.via_socket("POST", "/api/stream", headers, entry).status == 201
        assert "Traceback" not in web.proc.output
        assert "redis refuses writes (NOREPLICAS" in web.proc.output
    finally:
        web.proc.stop()


# -- Celery ---------------------------------------------------------------------
def celery_settings(server: RedisProcess):
    """Broker and result settings for ``server``, as the app derives them."""
    return redis_settings(
        {
            "REDIS_BROKER_URL": server.url("app_broker"),
            "REDIS_RESULT_URL": server.url("app_results"),
        }
    )


def probe_app(server: RedisProcess) -> Celery:
    """A Celery client of ``server`` (this process's app is bound to the
    session's Redis): sends tasks by name, reads their results."""
    derived = celery_settings(server)
    app = Celery("noreplicas-probe", set_as_current=False)
    app.conf.update(
        broker_url=derived.celery_broker_url,
        broker_transport=derived.celery_broker_transport,
        broker_transport_options=derived.celery_broker_transport_options,
        result_backend=derived.celery_result_backend,
        result_backend_transport_options=derived.celery_result_backend_transport_options,
        task_queues=settings.CELERY_TASK_QUEUES,
        task_default_queue=settings.CELERY_TASK_DEFAULT_QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
    )
    return app


def close_probe(app: Celery) -> None:
    """Let the results go while Redis is up (their __del__ talks to it),
    then stop the result listener and the app."""
    gc.collect()
    consumer = getattr(app.backend, "result_consumer", None)
    if consumer is not None and getattr(consumer, "_pubsub", None) is not None:
        consumer.stop()
        consumer._pubsub = None
    app.close()


def test_the_worker_app_waits_out_refused_writes_by_its_effective_config() -> None:
    """What the worker runs with, read from the app, not the setting names:
    the waiting broker transport and result backend, retrying refused writes."""
    from config.celery_app import app

    assert type(app.backend) is RedisBackend
    assert app.backend.always_retry is True
    assert app.backend.max_retries == 10
    refused = redis.ResponseError("NOREPLICAS Not enough good replicas to write.")
    assert app.backend.exception_safe_to_retry(refused)
    assert not app.backend.exception_safe_to_retry(redis.ResponseError("WRONGTYPE x"))
    with app.connection_for_write() as conn:
        assert type(conn.transport) is Transport
        assert conn.transport.Channel.QoS.__name__ == "WaitingQoS"
    assert redis_settings(
        {"REDIS_BROKER_URL": "sentinel://h:26379/0?master_name=m"}
    ).celery_broker_transport == ("redisops.celery_redis:SentinelTransport")


def test_a_refused_ack_is_deferred_and_done_once_writes_return(
    own_redis: RedisProcess, episode: Episode
) -> None:
    """kombu with the app's transport, on a real Redis: a message taken
    (recorded as unacked), then acked while writes are refused. The ack does
    not raise, the message stays unacked; after the episode the deferred ack
    lands and nothing is left to redeliver."""
    derived = celery_settings(own_redis)
    admin = episode.admin
    queue = Queue(f"noreplicas-{uuid.uuid4().hex[:8]}")
    with Connection(
        derived.celery_broker_url,
        transport=derived.celery_broker_transport,
        transport_options=derived.celery_broker_transport_options,
    ) as conn:
        channel = conn.default_channel
        producer = conn.Producer(channel)
        producer.publish({"n": 1}, routing_key=queue.name, declare=[queue])
        message = wait_for(lambda: queue(channel).get(no_ack=False), what="message")
        unacked = f"{redis_acl.BROKER_PREFIX}unacked"
        assert admin.hlen(unacked) == 1
        episode.start()
        message.ack()  # refused: deferred, no error
        assert admin.hlen(unacked) == 1
        assert not channel.flush_deferred()
        episode.end()
        wait_for(channel.flush_deferred, timeout=15, what="the deferred ack")
        assert admin.hlen(unacked) == 0
        assert admin.zcard(f"{redis_acl.BROKER_PREFIX}unacked_index") == 0


def test_a_publish_retries_through_two_connection_errors_in_a_row(
    own_redis: RedisProcess,
) -> None:
    """A switchover gives a publish two connection errors in a row: its
    connection dropped, then, after kombu reconnected, the producer's channel
    closed by that reconnect. kombu's retry (Connection.ensure, which a publish's
    retry policy runs) gave up at the second unless the transport classifies its
    errors as recoverable: the app's does, so the retry policy alone bounds it.
    (The two errors are raised here: a real switchover's timing is what the ha
    scenario's test_switchover_under_load_loses_no_acknowledged_write runs.)"""
    derived = celery_settings(own_redis)
    policy = settings.CELERY_TASK_PUBLISH_RETRY_POLICY
    admin = redis.Redis.from_url(own_redis.url(), decode_responses=True)
    queue = Queue(f"reconnect-{uuid.uuid4().hex[:8]}")
    errors = [
        RedisConnectionError("Connection closed by server."),
        RedisConnectionError("the broker channel was closed by a reconnect"),
    ]
    with Connection(
        derived.celery_broker_url,
        transport=derived.celery_broker_transport,
        transport_options=derived.celery_broker_transport_options,
    ) as conn:
        producer = conn.Producer(conn.default_channel)
        attempts = []

        def publish() -> None:
            attempts.append(producer.channel)
            if errors:
                raise errors.pop(0)
            producer.publish(
                {"n": 1}, routing_key=queue.name, declare=[queue(producer.channel)]
            )

        conn.ensure(producer, publish, **{**policy, "interval_step": 0.1})()
        assert len(attempts) == 3
        assert attempts[0] is not attempts[2], (
            "the producer was revived on a new channel"
        )
        assert admin.llen(f"{redis_acl.BROKER_PREFIX}{queue.name}") == 1


def test_worker_survives_noreplicas_and_completes_the_task_after(
    own_redis: RedisProcess, episode: Episode, tmp_path: Path
) -> None:
    """A real worker (prefork) on that Redis is running a task when writes
    start being refused: the task's result cannot be stored, the idle
    process's fetch (BRPOP) is refused. The worker stays up, logs one WARNING
    for its broker connection, and once writes return stores the result,
    acks the task once (nothing left unacked, received once) and takes new
    tasks."""
    worker = Proc(
        worker_argv("INFO", "--hostname", "noreplicas@%h"),
        tmp_path / "worker.log",
        subprocess_env(REDISOPS_TEST_REDIS_PORT=str(own_redis.port)),
    )
    app = probe_app(own_redis)
    data = redis.Redis.from_url(own_redis.url("app_data"), decode_responses=True)
    admin = episode.admin
    try:
        warm = app.send_task("redisops.tasks.add", kwargs={"x": 1, "y": 2})
        assert warm.get(timeout=60) == 3, worker.output[-3000:]
        account = f"acct-{uuid.uuid4().hex[:8]}"
        result = app.send_task(
            "redisops.tasks.record_payment",
            kwargs={
                "payment_id": "p1",
                "account": account,
                "amount": 70,
                "hold_seconds": 3,
            },
        )
        wait_for(
            lambda: data.hget(tasks.LEDGER_KEY, account),
            timeout=30,
            what="the task running (its effect is in)",
        )
        episode.start()
        warned_or_exited(worker)
        alive_for(worker, 8)
        assert result.state == "STARTED"  # SUCCESS could not be stored yet
        broker_warning = "celery worker (broker): " + WARNING_TEXT
        assert worker.output.count(broker_warning) == 1, worker.output[-3000:]
        episode.end()
        assert result.get(timeout=60) == {
            "applied": True,
            "account": account,
            "balance": 70,
        }
        assert (
            app.send_task("redisops.tasks.add", kwargs={"x": 2, "y": 2}).get(timeout=60)
            == 4
        )
        wait_for(
            lambda: admin.hlen(f"{redis_acl.BROKER_PREFIX}unacked") == 0,
            timeout=15,
            what="every task acked",
        )
        lines = [x for x in worker.output.splitlines() if result.id in x]
        assert sum(" received" in x for x in lines) == 1, lines
        assert int(data.hget(tasks.LEDGER_KEY, account)) == 70
        assert "Unrecoverable error" not in worker.output
        assert worker.popen.poll() is None
    finally:
        warm = result = None
        close_probe(app)
        worker.stop(timeout=30)


def test_processes_started_during_an_episode_wait_and_then_work(
    own_redis: RedisProcess, episode: Episode, spawn
) -> None:
    """A worker (declaring its queues), a consumer (creating its group) and a
    listener (announcing itself) started while writes are refused: they stay
    up, each logs the episode once, and once writes return a task round trip,
    a stream entry and a message all go through."""
    port = str(own_redis.port)
    episode.start()
    worker = spawn(
        worker_argv("INFO", "--hostname", "started-refused@%h"),
        name="worker",
        REDISOPS_TEST_REDIS_PORT=port,
    )
    consumer = spawn(
        manage("stream_consumer", "--consumer", "SR", "--block-ms", "200"),
        name="consumer",
        REDISOPS_TEST_REDIS_PORT=port,
    )
    listener = spawn(
        manage("pubsub_listener", "--name", "SRL"),
        name="listener",
        REDISOPS_TEST_REDIS_PORT=port,
    )
    for proc, doing in (
        (worker, "declaring its queues"),
        (consumer, "creating the consumer group"),
        (listener, "recording"),
    ):
        warned_or_exited(proc)
        assert f"while {doing}" in proc.output, proc.output[-3000:]
    for proc in (worker, consumer, listener):
        alive_for(proc, 2)
    episode.end()
    app = probe_app(own_redis)
    data = redis.Redis.from_url(own_redis.url("app_data"), decode_responses=True)
    try:
        result = app.send_task("redisops.tasks.add", kwargs={"x": 20, "y": 22})
        assert result.get(timeout=60) == 42, worker.output[-3000:]
        entry = produce(data, settings.APP_STREAM, {"n": "1"}, 1000)
        wait_for(
            lambda: data.hget(effects_key(settings.APP_STREAM), entry),
            timeout=30,
            what="the entry applied",
        )
        wait_for(lambda: "SRL" in pubsub.listeners(data), timeout=30, what="presence")
        token = uuid.uuid4().hex
        assert pubsub.publish(data, "started", token) == 1
        wait_for(
            lambda: (
                [
                    r["data"]
                    for r in pubsub.received(data, settings.APP_PUBSUB_RECORD_STREAM, 1)
                ]
                == [token]
            ),
            timeout=10,
            what="the message recorded",
        )
    finally:
        result = None
        close_probe(app)
    for proc in (worker, consumer, listener):
        assert proc.popen.poll() is None
        assert proc.output.count(WARNING_TEXT) == 1, proc.output[-3000:]
