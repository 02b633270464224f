"""The drill scenario: a Redis host under test (server), a second Redis host converged
empty (new_server), and the app host (app_host), which is also the client host of the
Redis drills (client, remote). Fixtures: redisops_testlib.fixtures, and check_runs here."""

import json
import shlex
from collections.abc import Callable, Iterator

import pytest
from testinfra.host import Host

from redisops_testlib.hosts import write_file

pytest_plugins = ["redisops_testlib.fixtures"]

CHECKERS = ("redis-check-rdb", "redis-check-aof")
RECORDER_TAG = "redisops-check-recorder"
# A test hook, first in PATH (runuser keeps root's PATH): the journal stamps each
# record with the uid of the process that sent it (_UID, from the socket's
# credentials: the caller cannot forge it); then the real checker runs.
RECORDER = f"""#!/bin/sh
# Test hook of molecule/drill/tests/conftest.py (check_runs): removed after the tests.
logger -t {RECORDER_TAG} -- "$(basename "$0") $*"
exec "/usr/bin/$(basename "$0")" "$@"
"""


@pytest.fixture(scope="module")
def check_runs(server: Host, new_server: Host) -> Iterator[Callable[[], list[tuple[str, str, str]]]]:
    """Who runs Redis's file checkers (redis-check-rdb, redis-check-aof) on the Redis hosts
    while the module's tests run: a function that returns (host, user, command line) for
    each run so far."""
    hosts = [server, new_server]
    since = {}
    for host in hosts:
        since[host] = host.check_output("date +%s")
        for name in CHECKERS:
            write_file(host, f"/usr/local/bin/{name}", RECORDER)
            host.check_output(f"chmod 0755 /usr/local/bin/{name}")

    def runs() -> list[tuple[str, str, str]]:
        found = []
        for host in hosts:
            cmd = ["journalctl", "--no-pager", "-o", "json", "-t", RECORDER_TAG, f"--since=@{since[host]}"]
            for line in host.check_output(shlex.join(cmd)).splitlines():
                entry = json.loads(line)
                user = host.check_output(f"getent passwd {int(entry['_UID'])} | cut -d: -f1")
                found.append((host.backend.get_hostname(), user, entry["MESSAGE"]))
        return found

    yield runs
    for host in hosts:
        host.check_output("rm -f " + " ".join(f"/usr/local/bin/{n}" for n in CHECKERS))
