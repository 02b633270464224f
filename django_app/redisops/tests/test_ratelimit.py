"""Limiters: atomic, Redis's clock, never over-admit, reset when they should."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from redisops import ratelimit
from redisops.connections import client_from_url
from redisops.luascripts import lua_sha, lua_source, run_script
from redisops.tests.redis_proc import RedisProcess, free_port

ALGOS = sorted(ratelimit.ALGORITHMS)


@pytest.mark.parametrize("algorithm", ALGOS)
def test_limiter_admits_exactly_the_limit_then_denies_with_retry_after(
    algorithm: str, r: redis.Redis, uid: str
) -> None:
    limiter = ratelimit.make_limiter(algorithm, r, limit=5, period=60)
    decisions = [limiter.hit(uid) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    denied = decisions[-1]
    assert 0 < denied.retry_after <= 60
    headers = denied.headers()
    assert headers["RateLimit-Limit"] == "5"
    assert headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert 1 <= int(headers["RateLimit-Reset"]) <= 60


@pytest.mark.parametrize("algorithm", ALGOS)
def test_64_concurrent_clients_are_never_over_admitted(
    algorithm: str, redis_server, uid: str
) -> None:
    """64 threads, each with its own connection, race for 50 slots."""
    from django.conf import settings

    limit, clients, hits_each = 50, 64, 5
    barrier = threading.Barrier(clients)

    def client_run(_: int) -> int:
        conn = client_from_url(settings.REDIS_APP_URL)
        # A long period: GCRA's refill must not add tokens during the race.
        limiter = ratelimit.make_limiter(algorithm, conn, limit=limit, period=3600)
        barrier.wait()
        admitted = sum(limiter.hit(uid).allowed for _ in range(hits_each))
        conn.close()
        return admitted

    with ThreadPoolExecutor(max_workers=clients) as pool:
        admitted = sum(pool.map(client_run, range(clients)))
    assert admitted == limit  # never more; and no lost update either


def test_fixed_window_key_resets_under_steady_traffic(r: redis.Redis, uid: str) -> None:
    """The seed's INCR+EXPIRE pushed the expiry forward on every hit, so a busy
    client stayed blocked for ever. Ours sets it once per window."""
    limiter = ratelimit.FixedWindow(r, limit=3, period=0.5)
    key = limiter.key(uid)
    allowed_at: list[float] = []
    ttls: list[int] = []
    start = time.monotonic()
    while time.monotonic() - start < 1.6:  # steady traffic: a hit every 20 ms
        if limiter.hit(uid).allowed:
            allowed_at.append(time.monotonic() - start)
        ttls.append(r.pttl(key))
        time.sleep(0.02)
    # Three windows of 0.5 s -> three batches of 3 admitted requests.
    assert 9 <= len(allowed_at) <= 12
    assert any(t > 1.0 for t in allowed_at)
    assert all(t <= 500 for t in ttls)


def test_sliding_window_does_not_count_rejected_requests(
    r: redis.Redis, uid: str
) -> None:
    """A client that keeps retrying gets through once old requests age out."""
    limiter = ratelimit.SlidingWindow(r, limit=2, period=0.4)
    assert limiter.hit(uid).allowed
    assert limiter.hit(uid).allowed
    for _ in range(20):  # hammering while blocked
        assert not limiter.hit(uid).allowed
    assert r.zcard(limiter.key(uid)) == 2
    time.sleep(0.45)
    assert limiter.hit(uid).allowed


@pytest.mark.parametrize("algorithm", ALGOS)
def test_admitted_decisions_carry_remaining_and_reset_at_any_scale(
    algorithm: str, r: redis.Redis, uid: str
) -> None:
    """The admitted reply packs remaining and reset into one integer; it must
    decode exactly for a huge limit too (the benchmark's)."""
    limit = 10**9
    limiter = ratelimit.make_limiter(algorithm, r, limit=limit, period=60)
    decisions = [limiter.hit(uid) for _ in range(3)]
    # GCRA refills a token every 0.06 us: its bucket is full again at each hit.
    expected = (
        [limit - 1] * 3 if algorithm == "gcra" else [limit - i for i in (1, 2, 3)]
    )
    assert [d.remaining for d in decisions] == expected
    for d in decisions:
        assert d.allowed
        assert d.retry_after == 0
        assert 0 < d.reset_after <= 60


def test_limit_times_period_beyond_the_reply_range_is_refused(r: redis.Redis) -> None:
    with pytest.raises(ValueError, match="limit x period too large"):
        ratelimit.FixedWindow(r, limit=10**9, period=10**7)


@pytest.mark.parametrize("algorithm", ALGOS)
def test_script_is_reloaded_after_the_server_forgot_it(
    algorithm: str, r: redis.Redis, uid: str, admin_redis: redis.Redis
) -> None:
    limiter = ratelimit.make_limiter(algorithm, r, limit=5, period=60)
    assert limiter.hit(uid).allowed
    admin_redis.script_flush()
    assert limiter.hit(uid).remaining == 3


@pytest.mark.parametrize("algorithm", ALGOS)
def test_limiter_works_again_after_a_redis_restart(
    algorithm: str, uid: str, tmp_path
) -> None:
    """A restart drops the script cache and the connection: the next decision
    reconnects, gets NOSCRIPT, loads the script and decides (state is gone: no
    persistence here)."""
    server = RedisProcess(free_port(), tmp_path / "own-redis")
    server.start()
    try:
        client = client_from_url(server.url("app_data"))
        limiter = ratelimit.make_limiter(algorithm, client, limit=5, period=60)
        assert [limiter.hit(uid).remaining for _ in range(2)] == [4, 3]
        server.restart()
        # The admin asks: app_data may not run SCRIPT EXISTS (the app never does).
        admin = client_from_url(server.url())
        assert admin.script_exists(lua_sha(limiter.script_name)) == [False]
        admin.close()
        decision = limiter.hit(uid)
        assert decision.allowed
        assert decision.remaining == 4
        client.close()
    finally:
        server.stop()


def test_sliding_window_keeps_its_set_under_steady_traffic(
    r: redis.Redis, uid: str
) -> None:
    """The set's expiry is extended only when less than a window is left; it
    must still never expire while it holds a member inside the window (that
    would over-admit), stay bounded, and go away when idle."""
    window = 0.3
    limiter = ratelimit.SlidingWindow(r, limit=3, period=window)
    key = limiter.key(uid)
    admitted: list[tuple[float, float]] = []  # (sent, answered), client clock
    start = time.monotonic()
    while time.monotonic() - start < 1.5:  # 5 windows, a hit every 10 ms
        sent = time.monotonic()
        if limiter.hit(uid).allowed:
            admitted.append((sent, time.monotonic()))
        assert r.zcard(key) <= 3
        assert r.pttl(key) > 0
        time.sleep(0.01)
    assert len(admitted) >= 9  # 3 per window came through, windows after windows
    # Redis decided each between its sent and answered times, so any 4 admitted
    # requests span at least a window: answered(i+3) - sent(i) >= window.
    spans = [b[1] - a[0] for a, b in zip(admitted, admitted[3:], strict=False)]
    assert min(spans) >= window - 0.001
    assert r.pttl(key) <= 2 * window * 1000  # idle: gone within 2 windows


def test_sliding_window_counts_simultaneous_requests_separately(
    r: redis.Redis, uid: str
) -> None:
    limiter = ratelimit.SlidingWindow(r, limit=100, period=60)
    r.script_load(lua_source("sliding_window"))
    with r.pipeline(transaction=False) as pipe:  # ten requests, one instant
        for _ in range(10):
            run_script(pipe, "sliding_window", [limiter.key(uid)], limiter._args())
        pipe.execute()
    assert r.zcard(limiter.key(uid)) == 10


def test_token_bucket_refills_evenly(r: redis.Redis, uid: str) -> None:
    limiter = ratelimit.TokenBucket(r, limit=4, period=0.4)  # one token / 100 ms
    assert all(limiter.hit(uid).allowed for _ in range(4))
    denied = limiter.hit(uid)
    assert not denied.allowed
    assert 0 < denied.retry_after <= 0.11
    time.sleep(denied.retry_after + 0.01)
    assert limiter.hit(uid).allowed
    assert not limiter.hit(uid).allowed


@pytest.mark.parametrize("algorithm", ALGOS)
def test_decisions_ignore_the_client_clock(
    algorithm: str, r: redis.Redis, uid: str, monkeypatch
) -> None:
    limiter = ratelimit.make_limiter(algorithm, r, limit=2, period=60)
    assert limiter.hit(uid).allowed
    monkeypatch.setattr(time, "time", lambda: 10**10)  # a host far in the future
    monkeypatch.setattr(time, "monotonic", lambda: 10**10)
    assert limiter.hit(uid).allowed
    assert not limiter.hit(uid).allowed


@pytest.mark.parametrize("algorithm", ALGOS)
def test_one_round_trip_per_decision(algorithm: str, r: redis.Redis, uid: str) -> None:
    limiter = ratelimit.make_limiter(algorithm, r, limit=5, period=60)
    limiter.hit(uid)  # script loaded
    calls: list[tuple] = []
    original = r.execute_command

    def spy(*args, **kwargs):
        calls.append(args[:1])
        return original(*args, **kwargs)

    r.execute_command = spy  # type: ignore[method-assign]
    try:
        limiter.hit(uid)
    finally:
        del r.execute_command
    assert calls == [("EVALSHA",)]


def test_lua_scripts_use_redis_time_not_client_time() -> None:
    for name in ("sliding_window", "gcra"):
        assert "redis.call('TIME')" in ratelimit.lua_source(name)


def test_unknown_algorithm_is_refused(r: redis.Redis) -> None:
    with pytest.raises(ValueError, match="unknown algorithm"):
        ratelimit.make_limiter("leaky", r, 1, 1)


def test_sliding_window_members_are_unique_across_fork() -> None:
    """Members come from a per-process random prefix and a counter; a forked
    child draws a new prefix, so parent and child never collide."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    ratelimit.unique_member()  # parent's prefix in use before the fork
    with ctx.Pool(2) as pool:
        children = pool.starmap(_members, [(200,), (200,)])
    mine = _members(200)
    everything = [m for ms in (*children, mine) for m in ms]
    assert len(set(everything)) == len(everything)


def _members(n: int) -> list[str]:
    return [ratelimit.unique_member() for _ in range(n)]


def test_fixed_window_restarts_a_counter_that_has_no_expiry(
    r: redis.Redis, uid: str
) -> None:
    limiter = ratelimit.FixedWindow(r, limit=2, period=60)
    r.set(limiter.key(uid), 99)  # e.g. written by something else, no TTL
    decision = limiter.hit(uid)
    assert decision.allowed
    assert decision.remaining == 1
    assert 0 < r.pttl(limiter.key(uid)) <= 60_000
