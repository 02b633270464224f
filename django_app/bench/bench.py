"""Benchmark: our limiters vs `limits` and django-ratelimit vs PING, our stream
consumer vs the seed's naive loop, Celery round trips. One run, one
redis-server on loopback that this script starts (with the app's ACL users,
as in production) and stops. Every loop is bounded in time and count.

    python bench/bench.py [--duration 1.5] [--clients 1,16] [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

APP_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(APP_DIR))

# Test settings: they point every purpose at REDISOPS_TEST_REDIS_PORT with the
# ACL users of redisops.redis_acl. Set before Django reads them.
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
os.environ.setdefault("REDISOPS_TEST_DIR", tempfile.mkdtemp(prefix="redisops-bench-"))
from redisops.tests.redis_proc import RedisProcess, free_port  # noqa: E402

os.environ.setdefault("REDISOPS_TEST_REDIS_PORT", str(free_port()))

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402

from redisops import ratelimit, streams  # noqa: E402
from redisops.connections import client_from_url  # noqa: E402

BIG = 10**9  # a limit never reached: measures the decision, not the denial

# -- limiter candidates: factory(name) -> callable(key) -> bool -------------------


# Candidates: factory() -> hit(key, limit, period_s) -> admitted?


def ours(algorithm: str) -> Callable[[], Callable[[str, int, int], bool]]:
    """Our limiter, built once per (limit, period) like a view decorator holds it."""

    def make() -> Callable[[str, int, int], bool]:
        client = client_from_url(settings.REDIS_APP_URL)
        limiters: dict[tuple[int, int], ratelimit.Limiter] = {}

        def hit(key: str, limit: int, period: int) -> bool:
            if (limit, period) not in limiters:
                limiters[limit, period] = ratelimit.make_limiter(
                    algorithm, client, limit, period
                )
            return limiters[limit, period].hit(key).allowed

        return hit

    return make


def limits_lib(strategy: str) -> Callable[[], Callable[[str, int, int], bool]]:
    def make() -> Callable[[str, int, int], bool]:
        from limits import RateLimitItemPerSecond, storage, strategies

        url = bench_server.url()  # admin user: the library's keys are its own
        limiter = getattr(strategies, strategy)(storage.storage_from_string(url))
        items: dict[tuple[int, int], RateLimitItemPerSecond] = {}

        def hit(key: str, limit: int, period: int) -> bool:
            item = items.setdefault(
                (limit, period), RateLimitItemPerSecond(limit, period)
            )
            return limiter.hit(item, key)

        return hit

    return make


def django_ratelimit_lib() -> Callable[[str, int, int], bool]:
    from django.test import RequestFactory
    from django_ratelimit.core import is_ratelimited

    request = RequestFactory().get("/")

    def hit(key: str, limit: int, period: int) -> bool:
        return not is_ratelimited(
            request,
            group=key,
            key=lambda _g, _r: key,
            rate=f"{limit}/{period}s",
            increment=True,
        )

    return hit


def ping() -> Callable[[str, int, int], bool]:
    client = client_from_url(settings.REDIS_APP_URL)
    return lambda _key, _limit, _period: client.ping()


CANDIDATES: dict[str, Callable[[], Callable[..., bool]]] = {
    "PING (ceiling)": ping,
    "ours fixed window": ours("fixed"),
    "ours sliding window": ours("sliding"),
    "ours token bucket (GCRA)": ours("gcra"),
    "limits FixedWindow": limits_lib("FixedWindowRateLimiter"),
    "limits MovingWindow": limits_lib("MovingWindowRateLimiter"),
    "limits SlidingWindowCounter": limits_lib("SlidingWindowCounterRateLimiter"),
    "django-ratelimit": django_ratelimit_lib,
}


def _client_loop(name: str, key: str, duration: float, barrier, out) -> None:
    hit = CANDIDATES[name]()
    hit(key, BIG, 60)  # warm up: connect, load scripts
    barrier.wait()
    count = 0
    deadline = time.perf_counter() + duration
    while count < 5_000_000 and time.perf_counter() < deadline:
        hit(key, BIG, 60)
        count += 1
    out.put(count)


def throughput(name: str, clients: int, duration: float) -> float:
    """Decisions/s of `clients` processes, each limiting its own key (per-client
    limits, as for per-IP limits), all started together after warm-up."""
    run = uuid.uuid4().hex[:8]
    out: mp.Queue = mp.Queue()
    barrier = mp.Barrier(clients)
    procs = [
        mp.Process(
            target=_client_loop, args=(name, f"bench-{run}-{i}", duration, barrier, out)
        )
        for i in range(clients)
    ]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=duration + 60) for _ in procs)
    for p in procs:
        p.join(30)
    return total / duration


def _race(name: str, key: str, limit: int, tries: int, barrier, out) -> None:
    hit = CANDIDATES[name]()
    hit(f"{key}-warm", BIG, 60)
    barrier.wait()
    # A long period: no refill or window change during the race.
    out.put(sum(bool(hit(key, limit, 3600)) for _ in range(tries)))


def over_admission(
    name: str, clients: int = 16, limit: int = 300, tries: int = 40
) -> int:
    """Clients race for `limit` slots of one key with clients*tries attempts;
    returns how many more than `limit` were admitted."""
    key = f"race-{uuid.uuid4().hex[:8]}"
    out: mp.Queue = mp.Queue()
    barrier = mp.Barrier(clients)
    procs = [
        mp.Process(target=_race, args=(name, key, limit, tries, barrier, out))
        for _ in range(clients)
    ]
    for p in procs:
        p.start()
    admitted = sum(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    return admitted - limit


def bench_limiters(client_counts: list[int], duration: float) -> None:
    print("\n== Rate limit decisions per second (one Redis, loopback)")
    header = "".join(f"{f'{c} client(s)':>16}" for c in client_counts)
    print(f"{'candidate':<30}{header}{'vs PING':>10}{'over-admitted':>15}")
    ping_rates: dict[int, float] = {}
    for name in CANDIDATES:
        rates = {c: throughput(name, c, duration) for c in client_counts}
        if name.startswith("PING"):
            ping_rates = rates
            ratio, over = "1.00", "-"
        else:
            ratio = "/".join(f"{rates[c] / ping_rates[c]:.2f}" for c in client_counts)
            over = str(over_admission(name))
        cells = "".join(f"{rates[c]:>16,.0f}" for c in client_counts)
        print(f"{name:<30}{cells}{ratio:>10}{over:>15}", flush=True)


# -- streams -------------------------------------------------------------------------


def _fill(client: redis.Redis, stream: str, count: int) -> None:
    for start in range(0, count, 1000):
        with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(count, start + 1000)):
                pipe.xadd(stream, {"n": str(i)})
            pipe.execute()


def naive_seed_loop(client: redis.Redis, stream: str, count: int) -> float:
    """The seed guide's consumer: XREADGROUP COUNT 10, then XACK each entry."""
    client.xgroup_create(stream, "workers", id="0", mkstream=True)
    done = 0
    start = time.perf_counter()
    deadline = start + 120
    while done < count and time.perf_counter() < deadline:
        entries = client.xreadgroup(
            "workers", "consumer-1", {stream: ">"}, count=10, block=1000
        )
        for _stream, messages in entries or []:
            for message_id, _fields in messages:
                done += 1  # process(fields)
                client.xack(stream, "workers", message_id)
    return done / (time.perf_counter() - start)


def our_consumer(client: redis.Redis, stream: str, count: int, batch: int) -> float:
    c = streams.StreamConsumer(
        client,
        stream,
        "workers",
        "bench",
        batch=batch,
        block_ms=1000,
        handler=lambda *_: None,
    )
    c.ensure_group()
    start = time.perf_counter()
    deadline = start + 120
    while c.stats.processed < count and time.perf_counter() < deadline:
        c.read_new()
    return c.stats.processed / (time.perf_counter() - start)


def bench_streams(count: int) -> None:
    print(f"\n== Stream consumer, {count} entries, one consumer")
    client = client_from_url(settings.REDIS_APP_URL)
    rows = []
    s = f"app:bench:naive-{uuid.uuid4().hex[:6]}"
    _fill(client, s, count)
    rows.append(
        ("seed's naive loop (COUNT 10, XACK each)", naive_seed_loop(client, s, count))
    )
    for batch in (10, 100):
        s = f"app:bench:ours-{uuid.uuid4().hex[:6]}"
        _fill(client, s, count)
        rows.append(
            (
                f"ours, batch {batch} (+once-marker, atomic)",
                our_consumer(client, s, count, batch),
            )
        )
    for name, rate in rows:
        print(f"{name:<48}{rate:>12,.0f} msgs/s")


# -- celery --------------------------------------------------------------------------


def bench_celery(round_trips: int, burst: int) -> None:
    from redisops import tasks

    print(
        f"\n== Celery (prefork worker, concurrency 2): {round_trips} round trips, "
        f"{burst} tasks burst"
    )
    log = Path(os.environ["REDISOPS_TEST_DIR"]) / "bench-worker.log"
    with log.open("wb") as fh:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "--app",
                "config.celery_app",
                "worker",
                "--loglevel",
                "WARNING",
                "--concurrency",
                "2",
                "--queues",
                "default,heavy",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=APP_DIR,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
        try:
            tasks.add.delay(0, 0).get(timeout=60)
            latencies = []
            for i in range(round_trips):
                t0 = time.perf_counter()
                tasks.add.delay(i, 1).get(timeout=30)
                latencies.append((time.perf_counter() - t0) * 1000)
            latencies.sort()
            p50 = statistics.median(latencies)
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            t0 = time.perf_counter()
            results = [tasks.add.delay(i, 1) for i in range(burst)]
            for r in results:
                r.get(timeout=120)
            rate = burst / (time.perf_counter() - t0)
            print(f"round trip p50 {p50:.2f} ms, p99 {p99:.2f} ms; {rate:,.0f} tasks/s")
        finally:
            worker.terminate()
            worker.wait(30)


bench_server: RedisProcess


def main() -> None:
    global bench_server
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=1.5, help="seconds per measurement"
    )
    parser.add_argument(
        "--clients", default="1,16", help="client counts, comma-separated"
    )
    parser.add_argument("--stream-entries", type=int, default=20_000)
    parser.add_argument("--round-trips", type=int, default=300)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="small counts (CI smoke)")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.stream_entries, args.round_trips, args.burst = (
            0.3,
            2000,
            50,
            100,
        )
    client_counts = [int(c) for c in args.clients.split(",")]

    bench_server = RedisProcess(
        settings.REDIS_TEST_PORT, Path(os.environ["REDISOPS_TEST_DIR"]) / "redis"
    )
    bench_server.start()
    try:
        version = redis.Redis.from_url(bench_server.url()).info("server")[
            "redis_version"
        ]
        print(
            f"redis-server {version} on 127.0.0.1:{bench_server.port}, "
            f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}"
        )
        bench_limiters(client_counts, args.duration)
        bench_streams(args.stream_entries)
        bench_celery(args.round_trips, args.burst)
    finally:
        _close_result_consumer()
        bench_server.stop()


def _close_result_consumer() -> None:
    """Close Celery's result subscription while Redis is still up."""
    import gc

    from config.celery_app import app

    gc.collect()
    consumer = getattr(app.backend, "result_consumer", None)
    if consumer is not None and getattr(consumer, "_pubsub", None) is not None:
        consumer.stop()
        consumer._pubsub = None


if __name__ == "__main__":
    mp.set_start_method("fork")
    main()
