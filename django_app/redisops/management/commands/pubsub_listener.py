"""Listen on the app's Pub/Sub pattern and record what arrives, until SIGTERM."""

from __future__ import annotations

import logging
import signal
import socket
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from redisops import pubsub, redis_acl
from redisops.clients import redis_client
from redisops.pubsub import Listener

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "PSUBSCRIBE the app's channel pattern, confirm the subscription, record "
        "each message in a capped stream, reconnect after Redis restarts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--pattern", default=redis_acl.PUBSUB_PATTERN)
        parser.add_argument(
            "--name", default=socket.gethostname(), help="listener name"
        )
        parser.add_argument(
            "--record-stream", default=settings.APP_PUBSUB_RECORD_STREAM
        )
        parser.add_argument("--record-maxlen", type=int, default=pubsub.RECORD_MAXLEN)

    def handle(self, *args: Any, **opts: Any) -> None:
        if not opts["pattern"].startswith(redis_acl.APP_PREFIX):
            log.warning(
                "pattern %s is outside the app_data user's channels", opts["pattern"]
            )
        listener = Listener(
            # A fresh client per (re)connection.
            lambda: redis_client(settings.REDIS_APP_URL, socket_timeout=10.0),
            name=opts["name"],
            pattern=opts["pattern"],
            record_stream=opts["record_stream"],
            record_maxlen=opts["record_maxlen"],
        )

        def stop(signum: int, _frame: object) -> None:
            log.info("signal %d: stopping", signum)
            listener.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        listener.run()
