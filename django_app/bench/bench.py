"""Benchmark: our limiters vs `limits` and django-ratelimit vs PING, our stream
consumer vs the seed's naive loop, Celery round trips. One run, one
redis-server on loopback that this script starts (with the app's ACL users,
as in production) and stops. Every loop is bounded in time and count.

    python bench/bench.py [--duration 1.5] [--clients 1,16] [--quick]
                          [--limiters-only]
"""

from __future__ import annotations

import argparse
import logging
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
from redisops.tests.redis_proc import RedisProcess, free_port, worker_argv  # noqa: E402

os.environ.setdefault("REDISOPS_TEST_REDIS_PORT", str(free_port()))

import django  # noqa: E402

django.setup()
logging.getLogger("redisops.streams").setLevel(logging.WARNING)  # no per-run INFO

import redis  # noqa: E402
from django.conf import settings  # noqa: E402

from redisops import ratelimit, streams  # noqa: E402
from redisops.connections import client_from_url  # noqa: E402

BIG = 10**9  # a limit never reached: measures the decision, not the denial
PERIOD = 60

CLIENTS_MEAN = (
    "N clients = N OS processes (fork), each with its own client and its own TCP\n"
    "connection, each limiting its own key (per-client limits), all started\n"
    "together after warm-up; no threads, so the GIL does not cap them. All share\n"
    "the machine's {cpus} CPUs with redis-server (and whatever else runs), so the\n"
    "16-client column is total throughput under CPU contention."
)

# -- candidates: make(limit, period) -> hit(key) -> admitted? ----------------------
# Each is built once per process (as a view decorator or a worker holds its
# limiter) and warmed up (connection open, script loaded) before measuring.

Hit = Callable[[str], bool]


def ours(algorithm: str) -> Callable[[int, int], Hit]:
    def make(limit: int, period: int) -> Hit:
        client = client_from_url(settings.REDIS_APP_URL)
        limiter = ratelimit.make_limiter(algorithm, client, limit, period)
        return lambda key: limiter.hit(key).allowed

    return make


def limits_lib(strategy: str) -> Callable[[int, int], Hit]:
    def make(limit: int, period: int) -> Hit:
        from limits import RateLimitItemPerSecond, storage, strategies

        url = bench_server.url()  # admin user: the library's keys are its own
        limiter = getattr(strategies, strategy)(storage.storage_from_string(url))
        item = RateLimitItemPerSecond(limit, period)
        return lambda key: limiter.hit(item, key)

    return make


def django_ratelimit_lib(limit: int, period: int) -> Hit:
    from django.test import RequestFactory
    from django_ratelimit.core import is_ratelimited

    request = RequestFactory().get("/")
    rate = f"{limit}/{period}s"

    def hit(key: str) -> bool:
        return not is_ratelimited(
            request, group=key, key=lambda _g, _r: key, rate=rate, increment=True
        )

    return hit


def ping_app(_limit: int, _period: int) -> Hit:
    """PING through exactly the client ours use: client_from_url(REDIS_APP_URL),
    redis-py execute_command, the same pool and parser (hiredis)."""
    client = client_from_url(settings.REDIS_APP_URL)
    return lambda _key: client.ping()


def ping_limits(_limit: int, _period: int) -> Hit:
    """PING through the `limits` storage's own redis-py client."""
    from limits import storage

    client = storage.storage_from_string(bench_server.url()).get_connection()
    return lambda _key: client.ping()


def ping_django_redis(_limit: int, _period: int) -> Hit:
    """PING through django-redis (the cache django-ratelimit counts in)."""
    from django_redis import get_redis_connection

    client = get_redis_connection("default")
    return lambda _key: client.ping()


def lua_floor(limit: int, period: int) -> Hit:
    """An EVALSHA shaped like ours (one key, two arguments) of a script that
    only returns 0: what any Lua script costs before its first redis.call."""
    client = client_from_url(settings.REDIS_APP_URL)
    sha = client.script_load("return 0")
    args = (str(limit), str(period * 1000))
    return lambda key: client.execute_command(
        "EVALSHA", sha, 1, ratelimit.KEY_PREFIX + key, *args
    )


PING = "PING, app client"
FLOOR = "Lua floor: EVALSHA 'return 0'"
CANDIDATES: dict[str, Callable[[int, int], Hit]] = {
    PING: ping_app,
    FLOOR: lua_floor,
    "ours fixed window": ours("fixed"),
    "ours sliding window (log)": ours("sliding"),
    "ours token bucket (GCRA)": ours("gcra"),
    "limits FixedWindow": limits_lib("FixedWindowRateLimiter"),
    "limits MovingWindow": limits_lib("MovingWindowRateLimiter"),
    "limits SlidingWindowCounter": limits_lib("SlidingWindowCounterRateLimiter"),
    "django-ratelimit": django_ratelimit_lib,
    "PING, limits' client": ping_limits,
    "PING, django-redis client": ping_django_redis,
}
LIMITERS = [n for n in CANDIDATES if n != FLOOR and not n.startswith("PING")]
OURS = [n for n in LIMITERS if n.startswith("ours")]
LIBRARIES = [n for n in LIMITERS if n not in OURS]
BEST_LIBRARY = "best library (any strategy)"
# Like for like: each of ours against the library strategies closest to it.
# limits has no token bucket: GCRA is held against the best library number of
# the same round, whatever its algorithm. SlidingWindowCounter approximates a
# sliding window with two fixed-window counters (cheaper, not exact).
COMPARE = {
    "ours fixed window": ["limits FixedWindow", "django-ratelimit"],
    "ours sliding window (log)": [
        "limits MovingWindow",
        "limits SlidingWindowCounter",
        "django-ratelimit",
    ],
    "ours token bucket (GCRA)": [BEST_LIBRARY, "django-ratelimit"],
}


def _worker(index: int, conn, barrier) -> None:
    """One client process: builds candidates on demand, runs what it is told."""
    built: dict[tuple[str, int, int], Hit] = {}
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            return
        try:
            if msg[0] == "run":
                _, name, duration, key = msg
                hit = built.get((name, BIG, PERIOD))
                if hit is None:
                    hit = built[name, BIG, PERIOD] = CANDIDATES[name](BIG, PERIOD)
                key = f"{key}-{index}"
                hit(key)  # warm up: connect, load scripts
                barrier.wait(timeout=60)
                count = 0
                start = time.perf_counter()
                deadline = start + duration
                while count < 5_000_000 and time.perf_counter() < deadline:
                    hit(key)
                    hit(key)
                    hit(key)
                    hit(key)
                    count += 4
                conn.send((count, time.perf_counter() - start))
            elif msg[0] == "race":
                _, name, key, limit, tries = msg
                # A long period: no refill or window change during the race.
                hit = CANDIDATES[name](limit, 3600)
                hit(f"{key}-warm-{index}")
                barrier.wait(timeout=60)
                conn.send(sum(bool(hit(key)) for _ in range(tries)))
        except Exception as exc:  # report, never hang the parent
            conn.send(exc)


class Clients:
    """N client processes, kept for all rounds (forked once)."""

    def __init__(self, n: int) -> None:
        self.n = n
        barrier = mp.Barrier(n)
        self.conns = []
        self.procs = []
        for i in range(n):
            parent, child = mp.Pipe()
            p = mp.Process(target=_worker, args=(i, child, barrier), daemon=True)
            p.start()
            self.conns.append(parent)
            self.procs.append(p)

    def _ask(self, msg: tuple) -> list:
        for c in self.conns:
            c.send(msg)
        answers = []
        for c in self.conns:
            if not c.poll(180):
                raise RuntimeError(f"client process did not answer {msg[0]}")
            answer = c.recv()
            if isinstance(answer, Exception):
                raise answer
            answers.append(answer)
        return answers

    def rate(self, name: str, duration: float) -> float:
        """Decisions/s, all clients together (each counts over its own clock)."""
        key = f"bench-{uuid.uuid4().hex[:8]}"
        return sum(c / t for c, t in self._ask(("run", name, duration, key)))

    def over_admission(self, name: str, limit: int, tries: int) -> int:
        """All clients race for `limit` slots of ONE key with n*tries attempts;
        how many more than `limit` were admitted."""
        key = f"race-{uuid.uuid4().hex[:8]}"
        return sum(self._ask(("race", name, key, limit, tries))) - limit

    def close(self) -> None:
        for c in self.conns:
            c.send(("stop",))
        for p in self.procs:
            p.join(10)


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _paired(norm: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of norm(a) / norm(b); norm = rate / the PING rate
    measured just before and after it, so load that drifts between slots
    cancels out. norm(PING) is 1."""
    if b == BEST_LIBRARY:
        best = [max(r) for r in zip(*(norm[k] for k in LIBRARIES), strict=True)]
        return statistics.median(x / y for x, y in zip(norm[a], best, strict=True))
    return statistics.median(x / y for x, y in zip(norm[a], norm[b], strict=True))


def bench_limiters(client_counts: list[int], duration: float, rounds: int) -> dict:
    names = list(CANDIDATES)
    others = [k for k in names if k != PING]
    print(
        f"\n== Rate limit decisions per second (one Redis, loopback): median of "
        f"{rounds} rounds of {duration:g} s per candidate; in each round every "
        f"candidate runs between two PING runs (order rotated each round)"
    )
    print(CLIENTS_MEAN.format(cpus=os.cpu_count()))
    rates: dict[int, dict[str, list[float]]] = {}
    norm: dict[int, dict[str, list[float]]] = {}
    loads: dict[int, str] = {}
    for n in client_counts:
        clients = Clients(n)
        try:
            rates[n] = {name: [] for name in names}
            norm[n] = {name: [] for name in names}
            before = _load()
            for r in range(rounds):
                order = others[r % len(others) :] + others[: r % len(others)]
                ping = clients.rate(PING, duration)
                rates[n][PING].append(ping)
                norm[n][PING].append(1.0)
                for name in order:
                    rate = clients.rate(name, duration)
                    ping_after = clients.rate(PING, duration)
                    rates[n][name].append(rate)
                    rates[n][PING].append(ping_after)
                    norm[n][name].append(rate / ((ping + ping_after) / 2))
                    ping = ping_after
            loads[n] = f"{before} -> {_load()}"
        finally:
            clients.close()
    races = Clients(16)
    try:
        over = {name: races.over_admission(name, 300, 40) for name in LIMITERS}
    finally:
        races.close()

    med = {n: {k: statistics.median(v) for k, v in rates[n].items()} for n in rates}
    vs_ping = {n: {k: _paired(norm[n], k, PING) for k in names} for n in norm}
    spread = {
        n: {k: (max(v) - min(v)) / med[n][k] for k, v in rates[n].items()}
        for n in rates
    }
    head = "".join(
        f"{f'{n} client(s)':>14}{'xPING':>7}{'spread':>7}" for n in client_counts
    )
    print(f"\n{'candidate':<30}{head}{'over-admitted':>15}")
    for name in names:
        cells = "".join(
            f"{med[n][name]:>14,.0f}{vs_ping[n][name]:>7.2f}{spread[n][name]:>7.0%}"
            for n in client_counts
        )
        adm = str(over[name]) if name in over else "-"
        print(f"{name:<30}{cells}{adm:>15}", flush=True)
    print(
        "xPING: median over rounds of (rate / mean of the PING app-client rates "
        "measured just before and after it); spread: (max-min)/median of the "
        "rates over rounds;\n"
        "over-admitted: 16 processes race for 300 slots of one key with 640 "
        "attempts (more than 300 admitted = over-admission).\n"
        "load average (1/5/15 min) before -> after: "
        + "; ".join(f"{n} client(s) {loads[n]}" for n in client_counts)
    )

    vs = {
        n: {o: {c: _paired(norm[n], o, c) for c in COMPARE[o]} for o in OURS}
        for n in norm
    }
    head = "".join(f"{f'{n} client(s)':>14}" for n in client_counts)
    print(
        "\n== Like for like: ours / the closest library strategy, median over "
        "rounds of same-round ratios (> 1.00 = ours faster)\n"
        f"{'ours':<28}{'vs':<30}{head}"
    )
    for o in OURS:
        for c in ["PING, app client", *COMPARE[o]]:
            cells = "".join(
                f"{(vs_ping[n][o] if c == PING else vs[n][o][c]):>14.2f}"
                for n in client_counts
            )
            print(f"{o.removeprefix('ours '):<28}{c:<30}{cells}")
    print(
        f"{BEST_LIBRARY}: per round, the fastest of {', '.join(LIBRARIES)}; "
        "limits SlidingWindowCounter is an approximation (two counters)."
    )
    return {"vs_ping": vs_ping, "vs": vs, "over": over}


def cost_breakdown(rounds: int, calls: int = 3000) -> None:
    """Where one decision's time goes, 1 client, in this process: round trip
    (wall) and client CPU measured here; server CPU from INFO cpu (all of the
    server's work: event loop, socket reads and writes, command); in it, the
    command from INFO commandstats (usec_per_call of EVALSHA, which includes
    the script's redis.call()s, or PING)."""
    admin = redis.Redis.from_url(bench_server.url())
    steady = "ours sliding, 1 s window"
    hits = {n: CANDIDATES[n](BIG, PERIOD) for n in (PING, FLOOR, *OURS)}
    # The sliding window's steady state: old members leave on every hit
    # (TIME, ZREMRANGEBYSCORE, ZCARD, ZADD, PTTL; PEXPIRE about once a window).
    hits[steady] = ours("sliding")(BIG, 1)
    names = list(hits)
    cols = ("wall", "client CPU", "server CPU", "command")
    got: dict[str, list[tuple[float, ...]]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            hit, key = hits[name], f"cost-{uuid.uuid4().hex[:8]}"
            hit(key)
            admin.config_resetstat()
            cpu0 = admin.info("cpu")
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(calls):
                hit(key)
            wall = (time.perf_counter() - start) / calls * 1e6
            client_cpu = (time.process_time() - cpu_start) / calls * 1e6
            cpu1, stats = admin.info("cpu"), admin.info("commandstats")
            server_cpu = sum(
                cpu1[k] - cpu0[k] for k in ("used_cpu_sys", "used_cpu_user")
            )
            cmd = stats["cmdstat_ping" if name == PING else "cmdstat_evalsha"]
            got[name].append(
                (wall, client_cpu, server_cpu / calls * 1e6, cmd["usec_per_call"])
            )
    med = {
        n: [statistics.median(x[i] for x in got[n]) for i in range(4)] for n in names
    }
    print(
        f"\n== One decision, 1 client, in-process: median of {rounds} rounds x "
        f"{calls} calls, us per call\n"
        f"{'candidate':<30}"
        + "".join(f"{c:>11}" for c in cols)
        + f"{'xPING wall':>11}{'xPING CPU':>10}{'+client':>8}{'+server':>8}"
    )
    for name in names:
        m, p = med[name], med[PING]
        print(
            f"{name:<30}"
            + "".join(f"{x:>11.1f}" for x in m)
            + f"{p[0] / m[0]:>11.2f}{(p[1] + p[2]) / (m[1] + m[2]):>10.2f}"
            + f"{m[1] - p[1]:>8.1f}{m[2] - p[2]:>8.1f}"
        )
    print(
        "command: the EVALSHA (with its redis.call()s) or PING itself, inside "
        "server CPU. xPING CPU: PING's client + server CPU over this one's, the\n"
        "rate ratio to expect when the CPUs are the limit (16 clients); less "
        "sensitive to other load than wall time. +client/+server: CPU beyond "
        "PING's.\n"
        f"The Lua floor row is what any EVALSHA costs before its first redis.call; "
        f"0.80 x PING allows {0.25 * med[PING][0]:.1f} us more wall time than "
        f"PING's {med[PING][0]:.1f} us here."
    )


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


def our_consumer(
    client: redis.Redis, stream: str, count: int, batch: int, batch_commit: bool
) -> float:
    c = streams.StreamConsumer(
        client,
        stream,
        "workers",
        "bench",
        batch=batch,
        block_ms=1000,
        handler=lambda *_: None,
        batch_commit=batch_commit,
    )
    c.ensure_group()
    start = time.perf_counter()
    deadline = start + 120
    while c.stats.processed < count and time.perf_counter() < deadline:
        c.read_new()
    return c.stats.processed / (time.perf_counter() - start)


NAIVE = "seed's naive loop (COUNT 10, XACK each)"
STREAM_CANDIDATES: dict[str, Callable[[redis.Redis, str, int], float]] = {
    NAIVE: naive_seed_loop,
    "ours, batch 10, commit per entry": lambda c, s, n: our_consumer(
        c, s, n, 10, False
    ),
    "ours, batch 10, one commit per batch": lambda c, s, n: our_consumer(
        c, s, n, 10, True
    ),
    "ours, batch 100, one commit per batch": lambda c, s, n: our_consumer(
        c, s, n, 100, True
    ),
}


def bench_streams(count: int, rounds: int) -> dict[str, float]:
    print(
        f"\n== Stream consumer, {count} entries, one consumer (one process), no-op "
        f"handler: median of {rounds} interleaved rounds\n"
        "ours = XREADGROUP + handler + Lua commit (processed-once marker SET NX, "
        "effect HINCRBY, XACK; atomic)"
    )
    client = client_from_url(settings.REDIS_APP_URL)
    rates: dict[str, list[float]] = {name: [] for name in STREAM_CANDIDATES}
    names = list(STREAM_CANDIDATES)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            s = f"app:bench:s-{uuid.uuid4().hex[:8]}"
            _fill(client, s, count)
            rates[name].append(STREAM_CANDIDATES[name](client, s, count))
            client.delete(s, streams.effects_key(s))
    med = {k: statistics.median(v) for k, v in rates.items()}
    for name, rate in med.items():
        print(
            f"{name:<42}{rate:>10,.0f} msgs/s{rate / med[NAIVE]:>7.2f}x naive  "
            f"(rounds: {', '.join(f'{x:,.0f}' for x in rates[name])})"
        )
    return med


# -- celery --------------------------------------------------------------------------


def bench_celery(round_trips: int, burst: int) -> None:
    """Sequential round trips (delay + result.get) for p50/p99, then a burst of
    tasks sent at once for tasks/s; one worker, results over Redis Pub/Sub."""
    from redisops import tasks

    print(
        f"\n== Celery (prefork worker, concurrency 2): {round_trips} round trips, "
        f"{burst} tasks burst"
    )
    log = Path(os.environ["REDISOPS_TEST_DIR"]) / "bench-worker.log"
    with log.open("wb") as fh:
        worker = subprocess.Popen(
            worker_argv("WARNING"),
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


def verdict(limiters: dict, stream_rates: dict[str, float], counts: list[int]) -> None:
    """One line per target; a missed target is reported, never an error."""
    vs_ping, vs, over = limiters["vs_ping"], limiters["vs"], limiters["over"]

    def line(ok: bool, text: str) -> None:
        print(f"{'MET   ' if ok else 'MISSED'}  {text}")

    print(
        "\n== Verdict (targets of issue 4); ratios are medians over rounds of "
        "same-round ratios"
    )
    for n in counts:
        for name in OURS:
            ratio = vs_ping[n][name]
            line(ratio >= 0.8, f"{name}, {n} client(s): {ratio:.2f} x PING (>= 0.80)")
            for lib, r in vs[n][name].items():
                line(r > 1, f"{name}, {n} client(s): {r:.2f} x {lib}")
    ours_over = {k: over[k] for k in OURS}
    line(
        all(v <= 0 for v in ours_over.values()),
        "zero over-admission, ours: "
        + ", ".join(f"{k.split(' ', 1)[1]} {v:+d}" for k, v in ours_over.items()),
    )
    if stream_rates:
        best = max((k for k in stream_rates if k != NAIVE), key=stream_rates.get)
        r = stream_rates[best] / stream_rates[NAIVE]
        line(r >= 1, f"streams: {best} {r:.2f} x the naive loop (not slower)")


bench_server: RedisProcess


def main() -> None:
    global bench_server
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=0.25, help="seconds per measurement"
    )
    parser.add_argument(
        "--rounds", type=int, default=9, help="interleaved rounds (median reported)"
    )
    parser.add_argument(
        "--clients", default="1,16", help="client counts, comma-separated"
    )
    parser.add_argument("--stream-entries", type=int, default=10_000)
    parser.add_argument("--round-trips", type=int, default=300)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="small counts (CI smoke)")
    parser.add_argument(
        "--limiters-only",
        action="store_true",
        help="rate limiters only (no streams, no Celery)",
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds = 0.2, 3
        args.stream_entries, args.round_trips, args.burst = 2000, 50, 100
    client_counts = [int(c) for c in args.clients.split(",")]

    rounds = args.rounds
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
        limiters = bench_limiters(client_counts, args.duration, rounds)
        cost_breakdown(rounds)
        stream_rates = {}
        if not args.limiters_only:
            stream_rates = bench_streams(args.stream_entries, max(3, rounds // 2))
            bench_celery(args.round_trips, args.burst)
        verdict(limiters, stream_rates, client_counts)
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
