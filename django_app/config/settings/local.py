"""Local development: DEBUG on, Redis on localhost, SQLite in django_app/.state/."""

from __future__ import annotations

from .base import *  # noqa: F403
from .base import env_bool

DEBUG = env_bool("DJANGO_DEBUG", True)
