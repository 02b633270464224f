"""Failure rules for demos and drills, off unless APP_STREAM_DEMO_FAILURES=true.

``demo_handler`` replaces the consumer's default handler (consumer.apply_entry)
so that failures can be provoked through the public API, e.g. by the Molecule
scenarios and the dead-letter runbook's drill:

- ``work_ms=<n>``: the entry takes n ms (at most MAX_WORK_MS), so a kill -9
  can hit a consumer mid-entry;
- ``poison`` (any value): the entry always fails, so it ends in the DLQ;
- ``depends_on=<name>``: the entry fails while the key ``app:outage:<name>``
  exists (a simulated downstream outage: ``SET`` starts it, ``DEL`` ends it),
  so it is dead-lettered during the outage and succeeds on replay.

With the default handler these fields are data like any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..redis_acl import APP_PREFIX

if TYPE_CHECKING:
    from .consumer import StreamConsumer

MAX_WORK_MS = 10_000
DEPENDS_ON = "depends_on"
# The fields these rules read; the API refuses them (redisops.views).
DEMO_FIELDS = frozenset({"work_ms", "poison", DEPENDS_ON})
OUTAGE_PREFIX = f"{APP_PREFIX}outage:"


class PoisonEntryError(Exception):
    """The entry can never be processed (field ``poison``)."""


class DependencyDownError(Exception):
    """A downstream the entry needs is down (the flag ``outage_key``)."""


def outage_key(dependency: str) -> str:
    """Flag of a simulated downstream outage: while this key exists, entries
    with ``depends_on=<dependency>`` fail."""
    return f"{OUTAGE_PREFIX}{dependency}"


def demo_handler(
    consumer: StreamConsumer, entry_id: str, fields: dict[str, str]
) -> None:
    """Fail a poison entry, or one whose dependency is down; take ``work_ms``."""
    if "poison" in fields:
        raise PoisonEntryError(f"poison entry {entry_id}")
    dependency = fields.get(DEPENDS_ON)
    if dependency and consumer.client.exists(outage_key(dependency)):
        raise DependencyDownError(f"{dependency} is down ({outage_key(dependency)})")
    work_ms = fields.get("work_ms", "0")
    # isascii(): "²".isdigit() is True but int("²") raises.
    if work_ms.isascii() and work_ms.isdigit() and int(work_ms) > 0:
        consumer.wait(min(int(work_ms), MAX_WORK_MS) / 1000)
