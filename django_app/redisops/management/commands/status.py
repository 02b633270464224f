"""Print the app's state: Celery queues, reserved tasks, workers answering a
ping, the stream's progress, beat's heartbeat. Read-only, safe at any time.

``--json`` prints one object whose keys playbooks rely on (README: status).
Redis or the broker down: exit 1, one line on stderr naming which (and with
``--json`` an object with an ``error`` key on stdout); never a traceback.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import redis
from celery import current_app
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from kombu.exceptions import KombuError

from redisops import app_status
from redisops.clients import app_redis
from redisops.connections import redacted

# What a Redis or broker outage raises on the way (kombu wraps most
# connection errors in OperationalError, a KombuError).
UNAVAILABLE = (redis.RedisError, KombuError, OSError)


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0: {text!r}")
    return value


class Command(BaseCommand):
    help = (
        "Show Celery queue lengths, reserved tasks, the workers that answer a "
        "ping, stream progress and beat's heartbeat age; --json for machines."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="print one JSON object (README)"
        )
        parser.add_argument(
            "--ping-timeout",
            type=positive_seconds,
            default=1.0,
            metavar="SECONDS",
            help="how long to wait for workers to answer the ping (default 1.0)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        stage = "redis (REDIS_APP_URL)"
        try:
            client = app_redis()
            client.ping()
            stage = "broker (REDIS_BROKER_URL)"
            status = app_status.collect(
                current_app,
                client,
                queue_names=[q.name for q in settings.CELERY_TASK_QUEUES],
                stream=settings.APP_STREAM,
                group=settings.APP_STREAM_GROUP,
                heartbeat_max_age=settings.APP_HEARTBEAT_MAX_AGE,
                ping_timeout=opts["ping_timeout"],
            )
        except UNAVAILABLE as exc:
            reason = " ".join(redacted(str(exc)).split())  # one line, no password
            error = f"{stage} unavailable: {type(exc).__name__}: {reason}"
            if opts["json"]:
                self.stdout.write(json.dumps({"error": error}))
            raise CommandError(f"status: {error}", returncode=1) from None
        if opts["json"]:
            self.stdout.write(json.dumps(status))
        else:
            self.stdout.write("\n".join(app_status.summary(status)))
