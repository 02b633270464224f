"""Run one consumer of the app's stream consumer group until SIGTERM/SIGINT.

A lost Redis connection is retried in process with backoff, and Redis
refusing writes (NOREPLICAS, READONLY) is waited out in process
(StreamConsumer.run). Any other error ends the command (exit 1) and the
service manager restarts it (the systemd unit's Restart=). Nothing is lost
either way: the group's position and pending entries live in Redis, and the
consumer first re-reads its own pending entries.
"""

from __future__ import annotations

import logging
import signal
import socket
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from redisops.clients import app_redis
from redisops.streams import StreamConsumer, apply_entry
from redisops.streams.demo_failures import demo_handler

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Consume the app stream in a consumer group: claims stale entries, "
        "dead-letters entries that keep failing, stops cleanly on SIGTERM. "
        "APP_STREAM_DEMO_FAILURES=true turns on the demo failure rules."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--stream", default=settings.APP_STREAM)
        parser.add_argument("--group", default=settings.APP_STREAM_GROUP)
        parser.add_argument(
            "--consumer",
            default=socket.gethostname(),
            help="consumer name, stable across restarts (default: host name); "
            "give each process on a host its own",
        )
        parser.add_argument(
            "--max-deliveries", type=int, default=settings.APP_STREAM_MAX_DELIVERIES
        )
        parser.add_argument(
            "--claim-idle-ms", type=int, default=settings.APP_STREAM_CLAIM_IDLE_MS
        )
        parser.add_argument(
            "--block-ms",
            type=int,
            default=2000,
            help="XREADGROUP BLOCK (ms); must stay below the client's socket "
            "timeout (5 s)",
        )
        parser.add_argument("--batch", type=int, default=10)

    def handle(self, *args: Any, **opts: Any) -> None:
        handler = apply_entry
        if settings.APP_STREAM_DEMO_FAILURES:
            log.warning(
                "APP_STREAM_DEMO_FAILURES is on: entries with work_ms, poison or "
                "depends_on fail or wait on purpose (demo and drill rules)"
            )
            handler = demo_handler
        try:
            consumer = StreamConsumer(
                app_redis(),
                opts["stream"],
                opts["group"],
                opts["consumer"],
                max_deliveries=opts["max_deliveries"],
                claim_idle_ms=opts["claim_idle_ms"],
                block_ms=opts["block_ms"],
                batch=opts["batch"],
                dlq_maxlen=settings.APP_STREAM_DLQ_MAXLEN,
                handler=handler,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None

        def stop(signum: int, _frame: object) -> None:
            log.info("signal %d: finishing the current entry, then stopping", signum)
            consumer.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        consumer.run()
