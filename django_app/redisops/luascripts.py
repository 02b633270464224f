"""The app's Lua scripts (lua/*.lua): one way to run them.

``run_script`` sends EVALSHA with the script's SHA1 (computed once per
process) and loads the script only when the server answers NOSCRIPT (after a
restart or SCRIPT FLUSH): one round trip per call in the steady state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.exceptions import NoScriptError


@cache
def lua_source(name: str) -> str:
    """The text of lua/<name>.lua (shipped inside the package)."""
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text()


@cache
def lua_sha(name: str) -> str:
    """SHA1 of lua/<name>.lua, as EVALSHA wants it (computed once per process)."""
    return hashlib.sha1(lua_source(name).encode()).hexdigest()  # noqa: S324 - Redis's id


def run_script(
    client: redis.Redis,
    name: str,
    keys: Sequence[str],
    args: Sequence[Any] = (),
) -> Any:
    """EVALSHA lua/<name>.lua; SCRIPT LOAD and retry once on NOSCRIPT.

    ``client`` may also be a pipeline: the call is then queued (load the
    script beforehand with ``client.script_load(lua_source(name))``).
    """
    command = ("EVALSHA", lua_sha(name), len(keys), *keys, *args)
    try:
        return client.execute_command(*command)
    except NoScriptError:
        client.script_load(lua_source(name))
        return client.execute_command(*command)
