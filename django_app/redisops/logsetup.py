"""Logging helpers: one line per event, with the current Celery task id."""

from __future__ import annotations

import logging


class TaskContextFilter(logging.Filter):
    """Add ``task_id`` and ``task_name`` ("-" outside a task) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        from celery import current_task

        task = current_task
        request = getattr(task, "request", None) if task else None
        record.task_id = getattr(request, "id", None) or "-"
        record.task_name = getattr(task, "name", None) or "-"
        return True


class OneLineFormatter(logging.Formatter):
    """Escape newlines so a traceback stays one log line (journald, grep)."""

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "task_id"):
            record.task_id = "-"
        return super().format(record).replace("\r", "\\r").replace("\n", "\\n")
