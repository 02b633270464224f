"""The test hosts' connection: containers.podman.podman, with pipelining (a module
runs in one command, over stdin) and each command run through `runc exec`
(redisops_testlib.container_exec) instead of `podman exec`."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.connection import ensure_connect
from ansible.utils.display import Display
from ansible_collections.containers.podman.plugins.connection.podman import (
    Connection as PodmanConnection,
)

# The scenarios' test library (molecule/shared), which testinfra's backend uses too.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from redisops_testlib.container_exec import exec_argv

display = Display()

# Read by ansible-core from the source (not imported): options of this plugin.
DOCUMENTATION = """
    name: podman_runc
    short_description: containers.podman.podman with pipelining, through runc exec
    description:
      - Test hosts only. Sends each module over stdin to one command in the
        container instead of copying it in and running it with several, and runs
        that command with C(runc exec), which C(podman exec) calls through conmon
        (the container's own capabilities, seccomp profile, cgroup and environment),
        without podman's start-up for each command.
    options:
      remote_addr:
        description: The container's name or ID.
        default: inventory_hostname
        vars:
          - name: ansible_host
          - name: inventory_hostname
          - name: ansible_podman_host
      remote_user:
        description: The user in the container (set, commands go through podman exec).
        ini:
          - section: defaults
            key: remote_user
        env:
          - name: ANSIBLE_REMOTE_USER
        vars:
          - name: ansible_user
      podman_extra_args:
        description: Extra arguments to the podman command line (podman mount and cp).
        default: ''
        vars:
          - name: ansible_podman_extra_args
      podman_executable:
        description: The podman executable.
        default: podman
        vars:
          - name: ansible_podman_executable
      pipelining:
        description: Send modules over stdin.
        default: true
        type: boolean
        env:
          - name: ANSIBLE_PIPELINING
        vars:
          - name: ansible_pipelining
"""


class Connection(PodmanConnection):
    transport = "podman_runc"
    has_pipelining = True

    def _connect(self):
        # No `podman mount` for each task: only a file transfer needs the mount point.
        if not self._connected:
            self._connected = True
            self._mount_point = None
            self._mounted = False
        return self

    def _mount(self):
        if not self._mounted:
            super()._connect()
            self._mounted = True

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        display.vvv(f"EXEC {cmd}", host=self._container_id)
        argv = exec_argv(self._container_id, self.user) + shlex.split(to_native(cmd, errors="surrogate_or_strict"))
        p = subprocess.run(
            [to_bytes(a, errors="surrogate_or_strict") for a in argv],
            input=in_data,
            stdin=None if in_data is not None else subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        return p.returncode, p.stdout, p.stderr

    def put_file(self, in_path, out_path):
        self._mount()
        super().put_file(in_path, out_path)

    def fetch_file(self, in_path, out_path):
        self._mount()
        super().fetch_file(in_path, out_path)
