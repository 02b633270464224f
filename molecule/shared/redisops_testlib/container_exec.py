"""A command in a test host (a podman container) through `runc exec`, the call that
`podman exec` makes in the end (through conmon): the process gets the container's
own process spec (its capabilities, seccomp and AppArmor profiles, cgroup, user and
environment), without podman's and conmon's start-up for each command, the largest
cost of every Ansible task and testinfra command on a loaded 2-core machine.

Used by the Ansible connection plugin (molecule/shared/plugins/connection/
podman_runc.py) and by testinfra's podman:// backend (redisops_testlib.fixtures).
Anything else (another OCI runtime, a user other than the container's own) falls
back to `podman exec`, and so does every command with REDISOPS_EXEC=podman in the
environment (to compare the two, or to rule this out)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

# Where podman (as root) keeps runc's state of each container: runc --root.
RUNC_ROOT = Path("/run/runc")
# name -> container id, so that each command does not ask podman again (the id
# is checked against runc's state: a container removed and made again under the
# same name has a new id, and is looked up again).
_CACHE = Path(tempfile.gettempdir()) / "redisops-runc-ids"


def _running(cid: str) -> bool:
    return (RUNC_ROOT / cid / "state.json").is_file()


def container_id(name: str) -> str | None:
    """The running container's id when runc runs it (its state under RUNC_ROOT), else None."""
    cached = _CACHE / name
    try:
        cid = cached.read_text().strip()
        if cid and _running(cid):
            return cid
    except OSError:
        pass
    out = subprocess.run(
        ["podman", "inspect", "--type", "container", "--format", "{{.Id}} {{.OCIRuntime}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return None
    cid, runtime = out.stdout.split()
    if runtime != "runc" or not _running(cid):
        return None
    _CACHE.mkdir(mode=0o700, exist_ok=True)
    # Written whole or not at all: lanes and Ansible's forks run side by side.
    fd, tmp = tempfile.mkstemp(dir=_CACHE)
    with os.fdopen(fd, "w") as f:
        f.write(cid)
    os.replace(tmp, cached)
    return cid


def exec_argv(name: str, user: str | None = None) -> list[str]:
    """The argv prefix that runs a command (the rest of argv) in container `name`;
    stdin, stdout and stderr are passed through."""
    cid = container_id(name) if not user and os.environ.get("REDISOPS_EXEC") != "podman" else None
    if cid is None:
        return ["podman", "exec", "-i", *(["--user", user] if user else []), name]
    return ["runc", "--root", str(RUNC_ROOT), "exec", cid]
