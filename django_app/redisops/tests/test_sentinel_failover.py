"""The app's Redis purposes under Sentinel, built from the settings the app
uses (config.settings.base.redis_settings): the app's data client, Celery's
broker and result backend, and the cache each reach the master through
Sentinels that require a login, pay one timeout (not a hang) for a hung
Sentinel, and follow a failover; the limiter's script survives the new
master's empty script cache (NOSCRIPT). Real redis-server, replica and three
Sentinels on loopback (redisops/tests/sentinel_proc.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from django_redis.cache import RedisCache
from kombu import Connection
from kombu.exceptions import OperationalError
from redis.sentinel import SentinelManagedSSLConnection

from config.settings.base import redis_settings
from redisops import ratelimit, redis_acl
from redisops.connections import RedisTls, client_from_url
from redisops.luascripts import lua_sha
from redisops.management.commands.smoke import CHECKS
from redisops.tests import tls_pki
from redisops.tests.conftest import manage, wait_for
from redisops.tests.redis_proc import password, worker_argv
from redisops.tests.sentinel_proc import SentinelGroup
from redisops.tests.test_smoke import smoke
from redisops.tests.tls_pki import make_pki

# A hung Sentinel costs its read timeout (connections.SENTINEL_CLIENT_DEFAULTS,
# 2 s) per new connection; kombu tries a few times, the cache opens one to the
# master and more to replicas while it waits for its value there. Measured
# 2-18 s; far below "forever", which is what it costs without the timeouts.
HUNG_SENTINEL_BOUND = 45.0
FAILOVER_RECOVERY_BOUND = 30.0


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    g = SentinelGroup(tmp_path_factory.mktemp("sentinel"))
    try:
        g.start()
        yield g
    finally:
        g.stop()


@pytest.fixture(scope="module")
def tls_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """The same over TLS only: clients, replication and Sentinels, with client
    certificates required everywhere."""
    workdir = tmp_path_factory.mktemp("sentinel-tls")
    pki = workdir / "pki"
    pki.mkdir()
    make_pki(pki, server_names="DNS:localhost,IP:127.0.0.1")
    g = SentinelGroup(workdir, pki=pki)
    try:
        g.start()
        yield g
    finally:
        g.stop()


def app_tls(group: SentinelGroup) -> RedisTls:
    """The app's TLS settings: the CA and its client certificate."""
    pki = group.pki
    assert pki
    return RedisTls(
        str(pki / "ca.crt"), str(pki / "client.crt"), str(pki / "client.key")
    )


class Purposes:
    """One client per purpose, from the settings the app builds for its URLs."""

    def __init__(
        self,
        group: SentinelGroup,
        sentinels: list[int] | None = None,
        tls: RedisTls | None = None,
    ) -> None:
        urls = {
            user.env: group.url(user.name, sentinels=sentinels)
            for user in redis_acl.USERS
            if user.env
            in (
                "REDIS_BROKER_URL",
                "REDIS_RESULT_URL",
                "REDIS_CACHE_URL",
                "REDIS_APP_URL",
            )
        }
        self.settings = redis_settings(urls, tls)
        self.app = client_from_url(self.settings.redis_app_url or "", tls)
        self.celery = Celery("sentinel-test", set_as_current=False)
        self.celery.conf.update(
            broker_url=self.settings.celery_broker_url,
            broker_transport_options=self.settings.celery_broker_transport_options,
            broker_use_ssl=self.settings.celery_broker_use_ssl,
            redis_backend_use_ssl=self.settings.celery_redis_backend_use_ssl,
            result_backend=self.settings.celery_result_backend,
            result_backend_transport_options=(
                self.settings.celery_result_backend_transport_options
            ),
        )
        cache = self.settings.caches["default"]
        # Errors must surface here, not be ignored as misses.
        options = {**cache["OPTIONS"], "IGNORE_EXCEPTIONS": False}
        self.cache = RedisCache(
            cache["LOCATION"], {"KEY_PREFIX": cache["KEY_PREFIX"], "OPTIONS": options}
        )

    def close(self) -> None:
        self.celery.close()

    def write(self, purpose: str, token: str) -> None:
        """Write ``token`` through one purpose and read it back."""
        if purpose == "app":
            self.app.set(f"{redis_acl.APP_PREFIX}sentinel-{token}", token, ex=60)
            assert self.app.get(f"{redis_acl.APP_PREFIX}sentinel-{token}") == token
        elif purpose == "broker":
            with Connection(
                self.settings.celery_broker_url,
                transport_options=self.settings.celery_broker_transport_options,
                ssl=self.settings.celery_broker_use_ssl or False,
            ) as conn:
                queue = conn.SimpleQueue(f"sentinel-{token}")
                queue.put({"token": token})
                assert queue.get(timeout=5).payload == {"token": token}
                queue.close()
        elif purpose == "results":
            self.celery.backend.store_result(f"t-{token}", {"token": token}, "SUCCESS")
            assert self.celery.backend.get_task_meta(f"t-{token}")["result"] == {
                "token": token
            }
        elif purpose == "cache":
            # django-redis's SentinelClient reads from a replica: the value
            # arrives there with the replication stream (a fresh replica
            # after a failover first syncs in full).
            self.cache.set(f"sentinel-{token}", token, timeout=60)
            wait_for(
                lambda: self.cache.get(f"sentinel-{token}") == token,
                timeout=15,
                what="the cached value on a replica",
            )
        else:
            raise ValueError(purpose)

    def key_of(self, purpose: str, token: str) -> str | None:
        """The key a write left behind (the broker's queue is drained by the read)."""
        return {
            "app": f"{redis_acl.APP_PREFIX}sentinel-{token}",
            "results": f"{redis_acl.RESULTS_PREFIX}celery-task-meta-t-{token}",
            "cache": f"{redis_acl.CACHE_PREFIX}:1:sentinel-{token}",
        }.get(purpose)


PURPOSES = ["app", "broker", "results", "cache"]
RETRYABLE = (redis.RedisError, OSError, OperationalError)


def within(seconds: float, action: Callable[[], Any]) -> float:
    """Run ``action`` in a thread; fail if it has not returned after ``seconds``
    (a hang), re-raise what it raised; return how long it took."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s: a hang"
    if "error" in outcome:
        raise outcome["error"]
    return time.monotonic() - started


def retried(action: Callable[[], Any], bound: float) -> int:
    """Run ``action`` until it succeeds; the errors on the way (a failover's
    window) are counted and returned; none may last beyond ``bound``."""
    errors = 0
    deadline = time.monotonic() + bound
    while True:
        try:
            action()
            return errors
        except RETRYABLE:
            errors += 1
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def follow_a_failover(
    purposes: Purposes, group: SentinelGroup, uid: str
) -> dict[str, int]:
    """Write through every purpose, fail over, write again until it works and
    check those writes are on the new master; the errors on the way, by purpose."""
    for purpose in PURPOSES:
        purposes.write(purpose, f"{uid}-before")
    new_master = group.failover()
    errors = {
        purpose: retried(
            lambda p=purpose: purposes.write(p, f"{uid}-after"),
            FAILOVER_RECOVERY_BOUND,
        )
        for purpose in PURPOSES
    }
    node = group.node(new_master)
    for purpose in PURPOSES:
        key = purposes.key_of(purpose, f"{uid}-after")
        if key:
            assert node.exists(key), f"{purpose}: {key} is not on the new master"
    return errors


def test_every_purpose_follows_a_failover(group: SentinelGroup, uid: str) -> None:
    purposes = Purposes(group)
    try:
        errors = follow_a_failover(purposes, group, uid)
        print(f"errors before each purpose reached the new master: {errors}")
    finally:
        purposes.close()


def test_a_dropped_connection_costs_the_app_client_a_retry_not_an_error(
    group: SentinelGroup, uid: str
) -> None:
    """A connection the switchover dropped (CLIENT KILL) while idle in the
    pool: the next command goes on a new one, found through the Sentinels,
    instead of failing the request (the pool checks a connection before
    handing it out; a command in flight needs the retry, next test)."""
    purposes = Purposes(group)
    try:
        purposes.write("app", f"{uid}-1")  # the pool now holds a connection
        (user,) = [u.name for u in redis_acl.USERS if u.env == "REDIS_APP_URL"]
        master = group.node(group.master_port() or 0)
        assert master.client_kill_filter(user=user) >= 1
        purposes.write("app", f"{uid}-2")
    finally:
        purposes.close()


def test_a_write_in_flight_when_the_switchover_drops_it_is_sent_again(
    group: SentinelGroup, uid: str
) -> None:
    """What redis-sentinel-switchover does to the old master's clients: their
    writes wait in CLIENT PAUSE WRITE, then their connections are killed, then
    the pause ends. The write in flight on a killed connection is sent again
    on a new one (connections.sentinel_master_retry) instead of failing the
    request: master_for's connections get no retry of their own (redis-py
    6.4), which cost 1 of ~200 API requests a 503 in each switchover drill."""
    purposes = Purposes(group)
    key = f"{redis_acl.APP_PREFIX}sentinel-{uid}-in-flight"
    master = group.node(group.master_port() or 0)
    try:
        purposes.write("app", f"{uid}-1")  # the pool now holds a connection
        (user,) = [u.name for u in redis_acl.USERS if u.env == "REDIS_APP_URL"]
        assert master.execute_command("CLIENT", "PAUSE", 10000, "WRITE")
        outcome: dict[str, Any] = {}

        def write() -> None:
            try:
                outcome["reply"] = purposes.app.set(key, "v", ex=60)
            except redis.RedisError as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        # The SET is blocked by the pause, on the server.
        wait_for(
            lambda: any(
                c.get("user") == user and c.get("cmd") == "set"
                for c in master.client_list()
            ),
            timeout=10,
            what="the app's SET waiting in the pause",
        )
        assert master.client_kill_filter(user=user) >= 1
        master.execute_command("CLIENT", "UNPAUSE")
        thread.join(15)
        assert not thread.is_alive(), "the write still hangs"
        assert outcome == {"reply": True}, outcome
        assert master.get(key) == "v"
    finally:
        master.execute_command("CLIENT", "UNPAUSE")
        purposes.close()


def test_the_limiters_survive_noscript_on_a_new_master(
    group: SentinelGroup, uid: str
) -> None:
    """Script caches are not replicated: after a failover the new master answers
    NOSCRIPT (forced here with SCRIPT FLUSH) and each limiter loads its script;
    the counts made on the old master carry over."""
    purposes = Purposes(group)
    try:
        limiters = [
            # An hour: the token bucket refills one token in 20 minutes, not
            # while the failover runs.
            ratelimit.make_limiter(algorithm, purposes.app, limit=3, period=3600)
            for algorithm in sorted(ratelimit.ALGORITHMS)
        ]
        assert all(limiter.hit(uid).allowed for limiter in limiters)
        node = group.node(group.failover())
        node.script_flush()
        for limiter in limiters:
            first: list[ratelimit.Decision] = []
            retried(
                lambda lim=limiter, out=first: out.append(lim.hit(uid)),
                FAILOVER_RECOVERY_BOUND,
            )
            decisions = first + [limiter.hit(uid) for _ in range(2)]
            assert [d.allowed for d in decisions] == [True, True, False], limiter
            assert node.script_exists(lua_sha(limiter.script_name)) == [True]
    finally:
        purposes.close()


@pytest.mark.django_db
def test_the_stack_passes_smoke_through_sentinel_before_and_after_a_failover(
    group: SentinelGroup, spawn, uid: str
) -> None:
    """A real Celery worker, Pub/Sub listener and stream consumer, every URL a
    sentinel:// one: `manage.py smoke` passes, then again after a failover with
    the same processes (they reconnect on their own). Beat is left out: its
    heartbeat check reads the test server's key."""
    env = {
        user.env.replace("REDIS_", "REDIS_TEST_", 1): group.url(user.name)
        for user in redis_acl.USERS
        if user.env
    }
    spawn(worker_argv("INFO", "--hostname", f"sentinel-{uid}@%h"), name="worker", **env)
    spawn(manage("pubsub_listener", "--name", "smoke-listener"), name="listener", **env)
    spawn(
        manage("stream_consumer", "--consumer", "smoke-consumer"),
        name="consumer",
        **env,
    )

    def smoke_passes() -> str:
        result = smoke("--skip", "beat", **env)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    wait_for(smoke_passes, timeout=60, interval=1, what="smoke through Sentinel")
    group.failover()
    out = wait_for(
        smoke_passes, timeout=90, interval=1, what="smoke after the failover"
    )
    for check in CHECKS:
        if check != "beat":
            assert f"ok   {check}:" in out


def test_every_purpose_follows_a_failover_over_tls(
    tls_group: SentinelGroup, uid: str
) -> None:
    """With REDIS_TLS_* set, sentinel:// URLs speak TLS to the Sentinels and to
    the master they name (verified, with the client certificate), before and
    after a failover."""
    purposes = Purposes(tls_group, tls=app_tls(tls_group))
    try:
        conn = purposes.app.connection_pool.get_connection()
        assert isinstance(conn, SentinelManagedSSLConnection)
        purposes.app.connection_pool.release(conn)
        errors = follow_a_failover(purposes, tls_group, uid)
        print(f"over TLS, errors before each purpose reached the new master: {errors}")
    finally:
        purposes.close()


def test_sentinels_over_tls_refuse_plain_text_and_clients_without_a_certificate(
    tls_group: SentinelGroup,
) -> None:
    port = tls_group.sentinel_ports[0]
    kwargs = {"port": port, "username": "client", "password": password("client")}
    with pytest.raises(redis.ConnectionError):
        redis.Redis(**kwargs, socket_timeout=3).ping()
    pki = tls_group.pki
    assert pki
    without_certificate = redis.Redis(
        **kwargs, ssl=True, ssl_ca_certs=str(pki / "ca.crt"), socket_timeout=3
    )
    with pytest.raises(redis.ConnectionError):
        without_certificate.ping()
    with_certificate = redis.Redis(
        **kwargs, **tls_pki.client_tls_kwargs(pki), socket_timeout=3
    )
    assert with_certificate.ping()


# Last: a stopped Sentinel sits in TILT for 30 s once continued.
@pytest.mark.parametrize("purpose", PURPOSES)
def test_a_hung_sentinel_costs_a_timeout_not_a_hang(
    group: SentinelGroup, purpose: str, uid: str
) -> None:
    """The first Sentinel accepts connections but never answers (SIGSTOP): each
    purpose reaches the master through the next one within the bound."""
    purposes = Purposes(group)
    try:
        with group.hung(0):
            took = within(HUNG_SENTINEL_BOUND, lambda: purposes.write(purpose, uid))
        print(f"{purpose}: a hung first Sentinel cost {took:.1f} s")
    finally:
        purposes.close()


def test_a_task_running_across_a_switchover_runs_again_and_succeeds(
    group: SentinelGroup, spawn, uid: str
) -> None:
    """A task (acks late) running when a switchover drops the worker's broker
    connection: the worker terminates it (CELERY_WORKER_CANCEL_LONG_RUNNING_
    TASKS_ON_CONNECTION_LOSS), closing the channel puts its message back in the
    queue, and it runs again through the new master: SUCCESS within seconds, not
    after the visibility timeout (an hour). Its ack on the closed channel is
    skipped with a warning (redisops.celery_redis), not logged as CRITICAL."""
    env = {
        user.env.replace("REDIS_", "REDIS_TEST_", 1): group.url(user.name)
        for user in redis_acl.USERS
        if user.env
    }
    worker = spawn(
        worker_argv("INFO", "--hostname", f"switchover-{uid}@%h"), name="worker", **env
    )
    purposes = Purposes(group)
    # Sent without a result backend: a sender with one subscribes to each task's
    # result, and that subscription's retries outlive the test. States are read
    # as the API reads them (GET of the result key).
    sender = Celery("switchover-sender", set_as_current=False)
    sender.conf.update(
        broker_url=purposes.settings.celery_broker_url,
        broker_transport_options=purposes.settings.celery_broker_transport_options,
    )

    def state(task_id: str) -> str:
        return purposes.celery.AsyncResult(task_id).state

    try:
        warm = sender.send_task(
            "redisops.tasks.heavy_checksum", args=(1, 1), queue="heavy"
        ).id
        wait_for(lambda: state(warm) == "SUCCESS", timeout=60, what="the worker up")
        # About 14 s of CPU on an idle machine, longer on a loaded one: the
        # switchover (the Sentinels settled first) comes while it runs.
        group.wait_ready(timeout=45)
        task = sender.send_task(
            "redisops.tasks.heavy_checksum", args=(64, 300_000), queue="heavy"
        ).id
        wait_for(
            lambda: f"heavy_checksum[{task}] received" in worker.output,
            timeout=30,
            what="the task running",
        )
        started = time.monotonic()
        group.switchover()
        wait_for(
            lambda: state(task) == "SUCCESS",
            timeout=FAILOVER_RECOVERY_BOUND * 3,
            what="the task's SUCCESS after the switchover",
        )
        took = time.monotonic() - started
    finally:
        sender.close()
        purposes.close()
    out = worker.output
    assert f"heavy_checksum[{task}] cannot be acknowledged" in out, out[-3000:]
    assert out.count(f"heavy_checksum[{task}] received") == 2, out[-3000:]
    assert took < FAILOVER_RECOVERY_BOUND * 3
    assert " CRITICAL " not in out, out[-3000:]
