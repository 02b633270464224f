"""The tests' own access to the hosts: every Ansible task and testinfra command runs
through `runc exec` (redisops_testlib/container_exec.py) instead of `podman exec`. A
command run that way must be confined exactly as one from podman exec: the same
capabilities, seccomp filter, cgroup and user, and the host's kernel settings out
of reach, or the scenarios' proofs (the sandbox, the skipped kernel tuning) would
hold for our access but not for the container."""

import subprocess

from redisops_testlib.container_exec import exec_argv

# What confines a process: capability sets, no_new_privs, seccomp mode, cgroup,
# user; then whether it may write a kernel setting (/proc/sys is read-only there).
PROBE = (
    "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status; cat /proc/self/cgroup; id;"
    " (echo 1 > /proc/sys/vm/overcommit_memory) 2>&1 | sed 's/.*: //'"
)


def _probe(argv: list[str]) -> str:
    return subprocess.run([*argv, "/bin/sh", "-c", PROBE], capture_output=True, text=True, check=True).stdout


def test_a_command_through_runc_exec_is_confined_as_one_through_podman_exec(server, client):
    for host in (server, client):
        name = host.backend.get_hostname()
        argv = exec_argv(name)
        assert argv[0] == "runc", f"{name}: the tests reach it with {argv} (expected runc exec)"
        ours, podmans = _probe(argv), _probe(["podman", "exec", "-i", name])
        print(f"{name} through runc exec:\n{ours}")
        assert ours == podmans
        # The probe read what it should: a seccomp filter, a cgroup, root, a refused write.
        assert "Seccomp:\t2" in ours
        assert "libpod" in ours
        assert "uid=0(root)" in ours
        assert "Read-only file system" in ours
