#!/usr/bin/env python3
"""Runs INSIDE the web container: one wrk run, and the CPU time each process
on the web host spent during it. scripts/bench-api.sh copies it in with
wrk.lua and calls it once per endpoint, side and round.

    guest-run.py CONNECTIONS THREADS SECONDS URL get|post [TOKEN] [X_FORWARDED_PROTO]
    guest-run.py --cpu

Prints wrk.lua's line, then one of its own:

    wrk,requests,duration_us,p50_us,p99_us,max_us,connect,read,write,status,timeout
    cpu,gunicorn_us,nginx_us,journald_us,wrk_us

With --cpu, only the CPU time the processes below have used so far:

    cpu,gunicorn_us,nginx_us,journald_us

gunicorn, nginx and journald (both log every request) are the processes of
that name: utime + stime of the live ones plus the cutime + cstime their
parents collected from exited children, so gunicorn workers recycled during
the run (max_requests) still count. wrk's is its own rusage (our child). The
CPU figures do not depend on what other tenants of the host take, unlike
requests per second. Standard library only (the host's python3).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# comm (/proc/<pid>/stat) -> reported name
PROCESSES = {"gunicorn": "gunicorn", "nginx": "nginx", "systemd-journal": "journald"}
TICK_US = 1_000_000 / os.sysconf("SC_CLK_TCK")


def cpu_by_process() -> dict[str, float]:
    """Cumulative CPU time in microseconds per reported name."""
    totals = dict.fromkeys(PROCESSES.values(), 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited meanwhile: its time is in its parent's cutime now
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        name = PROCESSES.get(comm)
        if name is None:
            continue
        # Fields after "(comm) ": state is field 3, utime..cstime are fields 14..17.
        fields = text[text.rindex(")") + 2 :].split()
        totals[name] += sum(int(f) for f in fields[11:15]) * TICK_US
    return totals


def children_us() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1_000_000


def main(argv: list[str]) -> int:
    if argv == ["--cpu"]:
        print("cpu," + ",".join(f"{us:.0f}" for us in cpu_by_process().values()))
        return 0
    if len(argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    connections, threads, seconds, url, *script_args = argv
    cmd = [
        "wrk",
        f"--connections={connections}",
        f"--threads={threads}",
        f"--duration={seconds}s",
        "--timeout=10s",
        f"--script={HERE / 'wrk.lua'}",
        url,
        "--",
        *script_args,
    ]
    before, wrk0 = cpu_by_process(), children_us()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    wrk_us = children_us() - wrk0
    after = cpu_by_process()
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        return done.returncode
    sys.stderr.write(done.stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith("wrk,")]
    if len(lines) != 1:
        sys.stderr.write(f"guest-run: no result line from wrk.lua:\n{done.stdout}")
        return 1
    used = [after[name] - before[name] for name in PROCESSES.values()]
    print(lines[0])
    print("cpu," + ",".join(f"{us:.0f}" for us in [*used, wrk_us]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
