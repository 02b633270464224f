"""End-to-end check of a deployed stack; exit 1 naming what failed.

Checks: every configured Redis user logs in, the database answers, a task
round trip through a worker on each queue, beat's heartbeat is fresh, Pub/Sub
(own subscription, and the pubsub_listener service records the message),
Streams (the stream_consumer service processes an entry), and a rate limit.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from redisops import pubsub, streams, tasks
from redisops.clients import app_redis
from redisops.connections import client_from_url, redacted
from redisops.ratelimit import FixedWindow

CHECKS = (
    "redis",
    "database",
    "worker",
    "beat",
    "pubsub",
    "listener",
    "stream",
    "ratelimit",
)


class SmokeError(Exception):
    pass


def _poll(deadline: float, probe: Callable[[], Any], interval: float = 0.1) -> Any:
    while True:
        value = probe()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class Command(BaseCommand):
    help = "Check the deployed stack end to end; non-zero exit names what failed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--timeout", type=float, default=20.0, help="seconds per check (default 20)"
        )
        parser.add_argument(
            "--skip",
            action="append",
            default=[],
            metavar="CHECK",
            help=f"skip a check (repeatable or comma-separated): {', '.join(CHECKS)}",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        skip = {
            s.strip() for item in opts["skip"] for s in item.split(",") if s.strip()
        }
        unknown = skip - set(CHECKS)
        if unknown:
            raise CommandError(f"unknown check(s) to skip: {sorted(unknown)}")
        self.timeout = opts["timeout"]
        failed: list[str] = []
        for name in CHECKS:
            if name in skip:
                self.stdout.write(f"skip {name}")
                continue
            started = time.monotonic()
            try:
                detail = getattr(self, f"check_{name}")()
            except Exception as exc:
                failed.append(name)
                self.stderr.write(f"FAIL {name}: {type(exc).__name__}: {exc}")
                continue
            took = time.monotonic() - started
            self.stdout.write(f"ok   {name}: {detail} ({took:.2f}s)")
        if failed:
            raise CommandError(f"smoke failed: {', '.join(failed)}", returncode=1)
        self.stdout.write("smoke: all checks passed")

    def _deadline(self) -> float:
        return time.monotonic() + self.timeout

    def check_redis(self) -> str:
        users = []
        for purpose, url in settings.REDIS_URLS.items():
            if not url:
                continue
            client = client_from_url(url, socket_timeout=5.0)
            try:
                if not client.ping():
                    raise SmokeError(f"{purpose} ({redacted(url)}): no PONG")
            except Exception as exc:
                raise SmokeError(f"{purpose} ({redacted(url)}): {exc}") from exc
            finally:
                client.close()
            users.append(purpose.removeprefix("REDIS_").removesuffix("_URL").lower())
        return "logged in as " + ", ".join(users)

    def check_database(self) -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return f"{connection.vendor} answers"

    def check_worker(self) -> str:
        out = []
        result = tasks.add.delay(20, 22)
        value = result.get(timeout=self.timeout)
        if value != 42:
            raise SmokeError(f"add(20, 22) returned {value!r}")
        out.append("default")
        heavy = tasks.heavy_checksum.delay(1, 1)
        if len(heavy.get(timeout=self.timeout)) != 64:
            raise SmokeError("heavy_checksum returned no digest")
        out.append("heavy")
        return "task round trip on queues " + ", ".join(out)

    def check_beat(self) -> str:
        age = tasks.check_heartbeat(app_redis(), settings.APP_HEARTBEAT_MAX_AGE)
        return f"heartbeat {age:.0f}s old"

    def check_pubsub(self) -> str:
        client = app_redis()
        topic = f"smoke.{uuid.uuid4().hex}"
        sub = client.pubsub(ignore_subscribe_messages=False)
        channel = pubsub.channel_for(topic)
        try:
            pubsub.subscribe_confirmed(sub, channel, timeout=self.timeout)
            pubsub.publish(client, topic, "ping")
            deadline = self._deadline()
            while time.monotonic() < deadline:
                msg = sub.get_message(timeout=0.2)
                if msg and msg["type"] == "message" and msg["data"] == "ping":
                    return f"published and received on {channel}"
            raise SmokeError(
                "message published after a confirmed subscription never arrived"
            )
        finally:
            sub.close()

    def check_listener(self) -> str:
        client = app_redis()
        present = pubsub.listeners(client)
        if not present:
            raise SmokeError("no pubsub_listener is subscribed")
        token = uuid.uuid4().hex
        receivers = pubsub.publish(client, "smoke", token)
        if receivers < 1:
            raise SmokeError("published, but no subscriber received it")

        def recorded() -> bool:
            return any(
                r.get("data") == token
                for r in pubsub.received(client, settings.APP_PUBSUB_RECORD_STREAM, 200)
            )

        if not _poll(self._deadline(), recorded):
            raise SmokeError(f"listeners {present} did not record the message")
        return f"recorded by {', '.join(present)}"

    def check_stream(self) -> str:
        client = app_redis()
        entry_id = streams.produce(
            client,
            settings.APP_STREAM,
            {"smoke": uuid.uuid4().hex},
            settings.APP_STREAM_MAXLEN,
        )

        def processed() -> bool:
            return bool(
                client.hexists(streams.effects_key(settings.APP_STREAM), entry_id)
            )

        if not _poll(self._deadline(), processed):
            raise SmokeError(f"stream consumer did not process entry {entry_id}")
        return f"entry {entry_id} processed"

    def check_ratelimit(self) -> str:
        limiter = FixedWindow(app_redis(), limit=2, period=60)
        key = f"smoke:{uuid.uuid4().hex}"
        answers = [limiter.hit(key).allowed for _ in range(3)]
        if answers != [True, True, False]:
            raise SmokeError(f"limit 2: expected allow, allow, deny; got {answers}")
        return "limit 2 -> allow, allow, deny"
