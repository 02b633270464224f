"""The app's version, read from the installed package's metadata."""

from __future__ import annotations

from functools import cache
from importlib import metadata

DISTRIBUTION = "redisops-app"


@cache
def get_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # running from a source tree, not installed
        return "0+unknown"
