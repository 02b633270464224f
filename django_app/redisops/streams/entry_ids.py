"""Stream entry ids (``<ms>-<seq>``) as numbers, for ordering and paging."""

from __future__ import annotations


def id_tuple(entry_id: str) -> tuple[int, int]:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``; compares like Redis does."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def id_after(entry_id: str) -> str:
    """The smallest id after ``entry_id``: an exclusive range start that Redis
    6.0 understands too (the ``(`` prefix needs 6.2)."""
    ms, seq = id_tuple(entry_id)
    return f"{ms}-{seq + 1}"
