"""One line per event, with the task id when there is one."""

from __future__ import annotations

import logging

from redisops.logsetup import OneLineFormatter, TaskContextFilter


def test_traceback_stays_on_one_line() -> None:
    formatter = OneLineFormatter("%(levelname)s task=%(task_id)s %(message)s")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed", None, None
        )
        import sys

        record.exc_info = sys.exc_info()
    TaskContextFilter().filter(record)
    line = formatter.format(record)
    assert "\n" not in line
    assert line.startswith("ERROR task=- failed")
    assert "ValueError: boom\\nsecond line" in line
