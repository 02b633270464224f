"""The monitoring scenario's helpers: HTTP from a host, the recording webhook
receiver's notifications, Prometheus durations."""

import json
import shlex
import time
from typing import Any

from testinfra.host import Host

NOTIFICATIONS = "/var/lib/alert-receiver/notifications.jsonl"


def exporter_environ(host: Host, unit: str) -> str:
    """The environment of an exporter unit's main process, one variable per line.
    Read as root where the exporter runs in a user namespace of its own
    (PrivateUsers=yes in roles/exporters' drop-ins, systemd 252+): root created it,
    so root may read it without CAP_SYS_PTRACE, and the exporter's own uid outside
    it may not. Without one (systemd 247, Debian 11), root lacks CAP_SYS_PTRACE in
    the container and the exporter's user reads it. Fails unread."""
    pid = host.check_output(f"systemctl show -P MainPID {unit}")
    environ = f"/proc/{pid}/environ"
    as_root = host.run(f"tr '\\0' '\\n' < {environ}")
    if as_root.rc == 0:
        return as_root.stdout
    user = host.check_output(f"systemctl show -P User {unit}")
    return host.check_output(f"runuser -u {user} -- sh -c \"tr '\\\\0' '\\\\n' < {environ}\"")


def http_get(host: Host, url: str) -> str:
    """From `host`: '<status> <body>' of a GET, or the error (e.g. 'Connection refused')."""
    script = (
        "import sys, urllib.request\n"
        "try:\n"
        "    r = urllib.request.urlopen(sys.argv[1], timeout=10)\n"
        "    print(r.status, r.read().decode())\n"
        "except Exception as e:\n"
        "    print('error', getattr(e, 'reason', e))\n"
    )
    return host.check_output(f"python3 -c {shlex.quote(script)} {shlex.quote(url)}")


def seconds(value: str) -> float:
    """A Prometheus duration as the scenario writes them (2s, 10s, 1m)."""
    return float(value[:-1]) * {"s": 1, "m": 60, "h": 3600}[value[-1]]


class Receiver:
    """What the recording webhook receiver on the monitoring host got."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def alerts(self, name: str, since: float) -> list[tuple[float, dict[str, Any]]]:
        """(arrival time, alert) of every notification about alert `name` that arrived after `since`."""
        text = self.host.run(f"cat {NOTIFICATIONS}").stdout
        found = []
        for line in text.splitlines():
            note = json.loads(line)
            if note["received"] >= since:
                found += [(note["received"], a) for a in note["body"]["alerts"] if a["labels"]["alertname"] == name]
        return found

    def first(self, name: str, status: str, since: float) -> tuple[float, dict[str, Any]] | None:
        return next(((t, a) for t, a in self.alerts(name, since) if a["status"] == status), None)

    def any_firing(self, since: float) -> list[str]:
        text = self.host.run(f"cat {NOTIFICATIONS}").stdout
        return [
            a["labels"]["alertname"]
            for line in text.splitlines()
            if json.loads(line)["received"] >= since
            for a in json.loads(line)["body"]["alerts"]
            if a["status"] == "firing"
        ]


def now() -> float:
    # The containers share the controller's kernel clock: the receiver's
    # arrival times compare with ours.
    return time.time()
