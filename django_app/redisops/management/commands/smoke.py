"""End-to-end check of a deployed stack; exit 1 naming what failed.

Checks: every configured Redis user logs in, the database answers, app data
is within its storage budget, a task round trip through a worker on each
queue, beat's heartbeat is fresh, Pub/Sub (own subscription, and the
pubsub_listener service records the message), Streams (the stream_consumer
service processes an entry), a rate limit, and the authenticated API.

The API check runs in this process, through the WSGI application gunicorn
serves (every middleware, authentication, rate limit, the views), as a
request from the proxy's socket: smoke holds no client's token (hosts keep
only hashes). It reads the real token file (its clients are counted, never
shown), then authenticates as two throwaway clients of its own, listed in a
temporary token file for the duration of the check.
"""

from __future__ import annotations

import io
import json
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from redisops import pubsub, streams, tasks
from redisops.api_auth import current_tokens
from redisops.api_tokens import token_line
from redisops.clients import app_redis, redis_client
from redisops.connections import redacted
from redisops.ratelimit import FixedWindow
from redisops.storage_budget import check_storage_budget

CHECKS = (
    "redis",
    "database",
    "budget",
    "worker",
    "beat",
    "pubsub",
    "listener",
    "stream",
    "ratelimit",
    "api",
)


class SmokeError(Exception):
    pass


def call_wsgi(
    app: Callable[..., Any],
    method: str,
    path: str,
    *,
    host: str,
    token: str | None = None,
    body: Any = None,
) -> tuple[int, dict[str, str], Any]:
    """One request to a WSGI application as gunicorn passes a request from
    the proxy's socket: https, REMOTE_ADDR empty. (status, headers, JSON)."""
    data = b"" if body is None else json.dumps(body).encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "SERVER_NAME": host,
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": host,
        "REMOTE_ADDR": "",
        "CONTENT_LENGTH": str(len(data)),
        "CONTENT_TYPE": "application/json" if body is not None else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(data),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if token:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list, exc_info: Any = None) -> Any:
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)
        return lambda _chunk: None

    chunks = app(environ, start_response)
    try:
        raw = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return answer["status"], answer["headers"], json.loads(raw or b"null")


def api_host() -> str:
    """A Host the settings accept (the first of ALLOWED_HOSTS)."""
    first = (settings.ALLOWED_HOSTS or ["localhost"])[0]
    return "localhost" if first == "*" else first.lstrip(".")


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
            client = redis_client(url, socket_timeout=5.0)
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

    def check_budget(self) -> str:
        reading = check_storage_budget("smoke")
        if reading.maxmemory == 0:
            raise SmokeError("Redis has no maxmemory: the app-data budget cannot apply")
        mib = 1024 * 1024
        share = 100 * reading.used / reading.maxmemory
        return (
            f"used_memory {reading.used / mib:.1f} MiB of maxmemory "
            f"{reading.maxmemory / mib:.1f} MiB ({share:.0f} %), "
            f"app data refused above {settings.APP_DATA_MEMORY_BUDGET} %"
        )

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

    def check_api(self) -> str:
        clients = current_tokens().clients()  # the real file: readable, valid
        run = uuid.uuid4().hex[:8]
        owner, other = f"smoke-{run}", f"smoke-{run}-other"
        token, other_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        real_file = settings.APP_API_TOKENS_FILE
        with tempfile.TemporaryDirectory(prefix="redisops-smoke-") as tmp:
            path = Path(tmp) / "api-tokens"
            path.write_text(
                f"{token_line(owner, token)}\n{token_line(other, other_token)}\n"
            )
            settings.APP_API_TOKENS_FILE = str(path)
            try:
                detail = self._api_round_trip(token, other_token)
            finally:
                settings.APP_API_TOKENS_FILE = real_file
        return f"token file lists {len(clients)} client(s); in-process: {detail}"

    def _api_round_trip(self, token: str, other_token: str) -> str:
        app, host = WSGIHandler(), api_host()
        add = {"task": "add", "args": {"x": 20, "y": 22}}
        status, headers, _ = call_wsgi(app, "POST", "/api/tasks", host=host, body=add)
        if status != 401 or "WWW-Authenticate" not in headers:
            raise SmokeError(f"POST /api/tasks without a token answered {status}")
        status, _, body = call_wsgi(
            app, "POST", "/api/tasks", host=host, token=token, body=add
        )
        if status != 202:
            raise SmokeError(f"POST /api/tasks answered {status}: {body}")
        path = f"/api/tasks/{body['task_id']}"

        def done() -> Any:
            status, _, body = call_wsgi(app, "GET", path, host=host, token=token)
            if status != 200:
                raise SmokeError(f"GET {path} answered {status}: {body}")
            return body if body.get("ready") else None

        result = _poll(self._deadline(), done)
        if not result or result.get("result") != 42:
            raise SmokeError(f"add(20, 22) through the API: {result!r}")
        status, _, _ = call_wsgi(app, "GET", path, host=host, token=other_token)
        if status != 404:
            raise SmokeError(f"another client read the result: {status}")
        knob = {"fields": {"poison": "1"}}
        status, _, _ = call_wsgi(
            app, "POST", "/api/stream", host=host, token=token, body=knob
        )
        if status != 400:
            raise SmokeError(f"a demo failure field was not refused: {status}")
        return (
            "401 without a token, a task round trip (42), 404 for another "
            "client, demo field refused"
        )

    def check_ratelimit(self) -> str:
        limiter = FixedWindow(app_redis(), limit=2, period=60)
        key = f"smoke:{uuid.uuid4().hex}"
        answers = [limiter.hit(key).allowed for _ in range(3)]
        if answers != [True, True, False]:
            raise SmokeError(f"limit 2: expected allow, allow, deny; got {answers}")
        return "limit 2 -> allow, allow, deny"
