"""Move dead-lettered stream entries back into the stream, once the cause is fixed.

An entry lands in ``<stream>:dlq`` after failing APP_STREAM_MAX_DELIVERIES
times. Each batch is moved by one Lua script (XADD the original fields to the
stream, XDEL from the DLQ, atomically): a crash or a second run at the same
time never duplicates or loses an entry. Run it again and it moves 0.

Replayed entries are processed like new ones. An entry that still fails comes
back to the DLQ after the same number of deliveries. With
APP_STREAM_DEMO_FAILURES=true (demos, drills) entries with ``depends_on=<name>``
fail while the key ``app:outage:<name>`` exists, and this command also counts
them by dependency and says whether it is still down; delete the key, then
replay. See docs/runbooks/stream-lag-dlq.md.
"""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from redisops import streams
from redisops.clients import app_redis
from redisops.streams.demo_failures import DEPENDS_ON, outage_key


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError
    return value


class Command(BaseCommand):
    help = (
        "Move entries from the dead-letter stream <stream>:dlq back into the "
        "stream (oldest first, atomically per batch); --dry-run only counts them "
        "by failure reason (with APP_STREAM_DEMO_FAILURES=true also by "
        "depends_on, and whether app:outage:<name> is still set)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--stream", default=settings.APP_STREAM)
        parser.add_argument(
            "--max",
            type=positive,
            default=None,
            metavar="N",
            help="move at most N entries (default: all)",
        )
        parser.add_argument(
            "--batch",
            type=positive,
            default=100,
            metavar="N",
            help="entries per atomic script call (default 100)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="count what would move, by reason and dependency; change nothing",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        client = app_redis()
        stream = opts["stream"]
        dlq = streams.dlq_name(stream)
        try:
            result = streams.replay_dead_letters(
                client,
                stream,
                maxlen=settings.APP_STREAM_MAXLEN,
                limit=opts["max"],
                batch=opts["batch"],
                dry_run=opts["dry_run"],
                count_field=DEPENDS_ON if settings.APP_STREAM_DEMO_FAILURES else None,
            )
        except (ValueError, redis.RedisError) as exc:
            raise CommandError(f"replay_dlq: {type(exc).__name__}: {exc}") from None
        for reason, count in sorted(result.reasons.items()):
            self.stdout.write(f"reason     {count:6d}  {reason}")
        for name, count in sorted(result.field_counts.items()):
            down = client.exists(outage_key(name))
            state = f"still DOWN ({outage_key(name)} set)" if down else "up"
            self.stdout.write(f"{DEPENDS_ON} {count:6d}  {name}: {state}")
        for dlq_id, new_id in result.moved:
            self.stdout.write(f"moved      {dlq_id} -> {stream} {new_id}")
        if opts["dry_run"]:
            self.stdout.write(
                f"replay_dlq: dry run, would move {result.seen} entries "
                f"from {dlq} to {stream}; {result.left} in {dlq}"
            )
        else:
            self.stdout.write(
                f"replay_dlq: moved {len(result.moved)} entries from {dlq} "
                f"to {stream}; {result.left} left in {dlq}"
            )
