"""Where a stream's companions live: every key is named after the stream."""

from __future__ import annotations


def dlq_name(stream: str) -> str:
    """The dead-letter stream: entries that failed ``max_deliveries`` times."""
    return f"{stream}:dlq"


def effects_key(stream: str) -> str:
    """Hash: entry id -> how many times its effect was applied (always 1)."""
    return f"{stream}:effects"


def progress_key(stream: str) -> str:
    """Hash: failures, dead_lettered, replayed and trimmed_unprocessed counters."""
    return f"{stream}:progress"


def marker_key(stream: str, entry_id: str) -> str:
    """Processed-once marker of one entry (lua/commit_entries.lua sets it)."""
    return f"{stream}:done:{entry_id}"
